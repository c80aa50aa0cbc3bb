import Artifacts
import Foundation

/// Publishes a night: writes its bundle manifest (every file of every stage's outputs with its
/// size, rows and checksum; each stage's command; the variables) and swaps `root/current` to it
/// atomically, keeping the `keep` newest published nights. Rolls back to the previous one.
///
/// `root/published` lists the published nights, oldest first; `current` is its last line.
public enum NightPublisher {
    /// The pointer to the published night.
    public static let currentLink = "current"
    /// The list of published nights.
    public static let historyFile = "published"

    /// Publishes `night` (every stage of `plan` done in `state`).
    public static func publish(
        root: URL, night: String, plan: PipelinePlan, state: PipelineState, keep: Int, say: (String) -> Void
    ) throws {
        let run = root.appendingPathComponent("runs").appendingPathComponent(night)
        for s in plan.stages where state.stages[s.spec.name]?.status != .done {
            throw PipelineError("night \(night): stage \(s.spec.name) has not succeeded; nothing is published")
        }
        let t0 = Date()
        var artifacts: [Manifest.Artifact] = []
        var config: [String: String] = [:]
        for s in plan.stages {
            config["stage.\(s.spec.name)"] = state.stages[s.spec.name]?.command
            for output in s.outputs {
                let name = relative(output, to: run)
                artifacts.append(Manifest.Artifact(name: name, files: try files(of: output, in: run)))
                for (artifact, id) in innerRuns(output) { config["run.\(relative(artifact, to: run))"] = id }
            }
        }
        let manifest = Manifest(
            runID: night, producer: "mosaic pipeline", ranks: plan.stages.map(\.spec.ranks).max() ?? 1,
            createdAt: ISO8601DateFormatter().string(from: Date()), config: config,
            artifacts: artifacts.sorted { $0.name < $1.name })
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(manifest).write(
            to: run.appendingPathComponent(PublishedRun.manifestName), options: .atomic)
        var history = self.history(root: root).filter { $0 != night }
        history.append(night)
        try point(root: root, at: night, history: history)
        let kept = Set(history.suffix(max(keep, 1)))
        var pruned = history
        for old in history where !kept.contains(old) {
            try? FileManager.default.removeItem(at: root.appendingPathComponent("runs").appendingPathComponent(old))
            pruned.removeAll { $0 == old }
        }
        if pruned != history { try writeHistory(root: root, pruned) }
        let files = artifacts.reduce(0) { $0 + $1.files.count }
        say(
            String(
                format: "pipeline: published night %@ (%d artifacts, %d files, checksums in %.1f s) as %@/current",
                night, artifacts.count, files, Date().timeIntervalSince(t0), root.path))
    }

    /// Points `current` back at the night published before the current one; returns (from, to).
    @discardableResult
    public static func rollback(root: URL) throws -> (from: String, to: String) {
        var history = self.history(root: root)
        guard history.count >= 2, let from = history.popLast(), let to = history.last else {
            throw PipelineError(
                "\(root.path): no earlier published night to roll back to (published: \(self.history(root: root).joined(separator: ", ")))"
            )
        }
        try PublishedRun.open(root: root, runID: to).verifyChecksums()
        try point(root: root, at: to, history: history)
        return (from, to)
    }

    /// The published nights, oldest first.
    public static func history(root: URL) -> [String] {
        let text = (try? String(contentsOf: root.appendingPathComponent(historyFile), encoding: .utf8)) ?? ""
        return text.split(separator: "\n").map(String.init)
    }

    /// Swaps `current` to `runs/<night>` with an atomic rename, then records the history.
    static func point(root: URL, at night: String, history: [String]) throws {
        let fm = FileManager.default
        let temp = root.appendingPathComponent(".current-\(getpid())")
        try? fm.removeItem(at: temp)
        try fm.createSymbolicLink(atPath: temp.path, withDestinationPath: "runs/\(night)")
        guard rename(temp.path, root.appendingPathComponent(currentLink).path) == 0 else {
            throw PipelineError("\(root.path)/current: cannot swap the pointer (errno \(errno))")
        }
        try writeHistory(root: root, history)
    }

    static func writeHistory(root: URL, _ history: [String]) throws {
        try Data((history.joined(separator: "\n") + "\n").utf8).write(
            to: root.appendingPathComponent(historyFile), options: .atomic)
    }

    /// Every file under `output` (a file or a folder), with its size, checksum and the rows an
    /// inner run's manifest records for it.
    static func files(of output: String, in run: URL) throws -> [Manifest.File] {
        var rows: [String: (Int64, Int)] = [:]
        for (folder, manifest) in innerManifests(output) {
            for a in manifest.artifacts {
                for f in a.files { rows[folder + "/" + f.path] = (f.rows, f.rank) }
            }
        }
        var paths: [String] = []
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: output, isDirectory: &isDir), isDir.boolValue {
            for case let rel as String in FileManager.default.enumerator(atPath: output) ?? NSEnumerator() {
                let full = output + "/" + rel
                var d: ObjCBool = false
                if FileManager.default.fileExists(atPath: full, isDirectory: &d), !d.boolValue,
                    (try? FileManager.default.destinationOfSymbolicLink(atPath: full)) == nil
                {
                    paths.append(full)
                }
            }
        } else {
            paths = [output]
        }
        return try paths.sorted().map { p in
            let bytes = ((try FileManager.default.attributesOfItem(atPath: p))[.size] as? NSNumber)?.int64Value ?? 0
            let (r, rank) = rows[p] ?? (0, 0)
            return Manifest.File(
                path: relative(p, to: run), bytes: bytes, rows: r, rank: rank, checksum: try FileChecksum.of(path: p))
        }
    }

    /// The manifests of the runs a stage's output holds (`runs/<id>/MANIFEST.json`), by folder.
    static func innerManifests(_ output: String) -> [(String, Manifest)] {
        let runs = output + "/runs"
        guard let ids = try? FileManager.default.contentsOfDirectory(atPath: runs) else { return [] }
        return ids.sorted().compactMap { id in
            let folder = runs + "/" + id
            guard let data = FileManager.default.contents(atPath: folder + "/" + PublishedRun.manifestName),
                let m = try? JSONDecoder().decode(Manifest.self, from: data)
            else { return nil }
            return (folder, m)
        }
    }

    /// The run id each inner `current` link names, by the folder holding it.
    static func innerRuns(_ output: String) -> [(String, String)] {
        guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: output + "/current") else {
            return []
        }
        return [(output, URL(fileURLWithPath: target).lastPathComponent)]
    }

    static func relative(_ path: String, to run: URL) -> String {
        let base = run.path + "/"
        return path.hasPrefix(base) ? String(path.dropFirst(base.count)) : path
    }
}
