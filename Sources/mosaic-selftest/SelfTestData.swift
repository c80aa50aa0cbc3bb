import ArgumentParser
import Collective
import EventData
import Events
import Foundation

/// `mosaic selftest features`: builds labels, splits and point-in-time features on every rank's
/// shards of a dataset run and prints a digest that must not depend on the rank count; fails if
/// any feature leaks (uses an event at or after its label time).
struct SelfTestFeatures: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "features")

    @Option(help: "Root folder of the dataset run.") var data: String
    @Option(help: "Long sequence length.") var long = 2_000
    @Option(help: "Short sequence length.") var short = 20

    func run() throws {
        Communicator.runJob { comm in
            let reader = try DatasetReader(root: URL(fileURLWithPath: data))
            let builder = SequenceFeatureBuilder(longLength: long, shortLength: short)
            var sums = [UInt64](repeating: 0, count: 5)  // examples, long events, short events, digest, positives
            for path in try reader.myShards("events", comm: comm) {
                let events = try DatasetReader.readShard(path, entity: "events")
                let type = events.uint8["event_type"]!, ids = events.i64("event_id")
                let labels = ImpressionLabels.compute(events)
                let examples = (0..<events.count).filter { type[$0] == EventType.impression.rawValue }
                let f = builder.build(events, examples: examples)
                for e in 0..<f.count {
                    let t = f.labelTimestamp[e]
                    var h = Sharding.hash(ids[f.exampleRow[e]] ^ Int64(labels[f.exampleRow[e]]) << 56)
                    for j in f.longOffsets[e]..<f.longOffsets[e + 1] {
                        guard f.longTimestamp[j] < t else {
                            throw ValidationError(
                                "leak: example \(ids[f.exampleRow[e]]) uses event \(ids[f.longRow[j]]) at \(f.longTimestamp[j]) ≥ \(t)"
                            )
                        }
                        h = Sharding.hash(Int64(bitPattern: h) ^ ids[f.longRow[j]])
                    }
                    for j in f.shortOffsets[e]..<f.shortOffsets[e + 1] {
                        guard f.shortTimestamp[j] < t else {
                            throw ValidationError("leak in a short sequence of example \(ids[f.exampleRow[e]])")
                        }
                        h = Sharding.hash(Int64(bitPattern: h) ^ ids[f.shortRow[j]])
                    }
                    sums[3] &+= h
                    if ImpressionLabels.has(labels[f.exampleRow[e]], .closeup) { sums[4] += 1 }
                }
                sums[0] += UInt64(f.count)
                sums[1] += UInt64(f.longRow.count)
                sums[2] += UInt64(f.shortRow.count)
            }
            let all = try comm.allgather(sums)
            var total = [UInt64](repeating: 0, count: 5)
            for (i, v) in all.enumerated() { total[i % 5] &+= v }
            if comm.isRoot {
                print(
                    "FEATURES examples=\(total[0]) long_events=\(total[1]) short_events=\(total[2]) closeup_labels=\(total[4]) digest=\(String(total[3], radix: 16))"
                )
            }
        }
    }
}
