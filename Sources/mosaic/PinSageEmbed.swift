import ArgumentParser
import Artifacts
import Collective
import Foundation
import Graph
import Learning
import Linalg
import Models
import ProcessKit
import Publishing

struct PinSageEmbed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed every pin with a trained PinSage model, layer by layer (each pin once per layer).",
        discussion: """
            Layer k is computed for all of a rank's pins, then the layer-k vectors of their neighbours are fetched \
            from the owners, then layer k + 1. Pins without neighbours (cold start) are embedded from their content. \
            Writes embeddings/part-RRRRR-of-SSSSS.h5 with /embeddings/pin_ids (n) and vectors (n, d), attribute \
            model_version. Prints `PINSAGE-EMBED pins=… sum=…`.
            """)

    @OptionGroup var inputs: PinSageInputs
    @Option(help: "Root folder of the model run (from `mosaic pinsage train`).") var model = "out/pinsage"
    @Option(help: "Root folder of embedding runs to write.") var out = "out/embeddings"
    @Option(help: "Run id.") var runID = "embeddings"
    @Option(help: "Pins per forward chunk.") var chunk = 1024

    func run() throws {
        Communicator.runJob { comm in
            let t0 = now()
            let store = try inputs.load(comm)
            let modelPath = try PublishedRun.open(root: URL(fileURLWithPath: model)).paths(of: "model")[0]
            let (net, version) = try PinSageModel<Float>.load(path: modelPath)
            guard net.config.dIn == store.dIn else {
                throw GraphError(
                    "\(modelPath): model input width \(net.config.dIn), content features have \(store.dIn) (--tags must match training)"
                )
            }
            let t1 = now()
            let vectors = try PinSageEmbedder.embedAll(model: net, store: store, chunk: chunk) { k in
                comm.log("pinsage embed: layer \(k) done")
            }
            let seconds = now() - t1
            let writer = try RunWriter(
                root: URL(fileURLWithPath: out), runID: runID, producer: "mosaic pinsage embed",
                config: ["model": model, "model_version": version], comm: comm)
            try PinEmbeddings(ids: store.ids, vectors: vectors, d: net.config.dOut, modelVersion: version)
                .write(to: writer, rank: comm.rank, ranks: comm.size)
            try writer.commit()
            let pins = try comm.allreduce(store.ids.count)
            let sum = try comm.allreduce(vectors.reduce(0.0) { $0 + Double($1) })
            comm.log(
                String(
                    format: "pinsage embed: %d pins in %.2fs (%.0f pins/s), total %.2fs", pins, seconds,
                    Double(pins) / seconds, now() - t0))
            if comm.isRoot {
                print(
                    String(
                        format: "PINSAGE-EMBED pins=%d pins_per_s=%.0f sum=%.6f version=%@", pins,
                        Double(pins) / seconds, sum, version))
            }
        }
    }
}
