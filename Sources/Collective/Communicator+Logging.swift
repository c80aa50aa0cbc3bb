import Foundation

extension Communicator {
    /// Prints `message` on rank 0 only (every rank's progress is the same job's progress).
    public func log(_ message: @autoclosure () -> String) {
        guard isRoot else { return }
        FileHandle.standardError.write(Data((message() + "\n").utf8))
    }

    /// Runs a job body; on error, logs it (rank 0 logs its own; other ranks log theirs prefixed
    /// with the rank) and ends the whole world with MPI_Abort so no rank hangs in a collective.
    public static func runJob(forceMPI: Bool = false, _ body: (Communicator) throws -> Void) {
        let comm: Communicator
        do { comm = try Communicator.world(forceMPI: forceMPI) } catch {
            FileHandle.standardError.write(Data("mosaic: cannot start MPI: \(error)\n".utf8))
            exit(1)
        }
        do { try body(comm) } catch {
            let prefix = comm.size > 1 ? "mosaic (rank \(comm.rank)): error: " : "mosaic: error: "
            FileHandle.standardError.write(Data((prefix + "\(error)\n").utf8))
            if comm.size > 1 { comm.abort(code: 1) }
            exit(1)
        }
    }
}
