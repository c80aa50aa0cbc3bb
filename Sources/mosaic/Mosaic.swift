import ArgumentParser

/// `mosaic`: every batch job of the pipeline is a subcommand, launched under `mpirun`.
@main
struct Mosaic: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mosaic",
        abstract: "Mosaic home-feed recommender: MPI-parallel batch jobs.",
        discussion: """
            Run a job on N ranks of this machine with \
            `Cluster/mpirun-local.sh -np N .build/release/mosaic <job>`, or with mpirun/srun on a \
            cluster. Without a launcher a job runs as a one-rank world. Logs come from rank 0.
            """,
        subcommands: [
            Doctor.self, Generate.self, Cut.self, Ingest.self, Export.self, Adapt.self, Digest.self, IndexCommand.self,
            FeedCommand.self, RankerCommand.self, GraphCommand.self, PinSageCommand.self, RetrievalCommand.self,
            PipelineCommand.self, Publish.self, EvaluateCommand.self, MonitorCommand.self,
        ])
}
