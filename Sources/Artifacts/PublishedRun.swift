import Foundation

/// A published run, read through its manifest.
public struct PublishedRun: Sendable {
    /// The manifest's file name in a run folder; written last, so its presence means complete.
    public static let manifestName = "MANIFEST.json"
    /// The symlink under a root that names the published run.
    public static let currentLink = "current"

    /// The run's folder (resolved, not the `current` link, so a later publish does not move
    /// files under an open reader).
    public let directory: URL
    /// Its manifest.
    public let manifest: Manifest

    /// Opens the run that `root/current` points to (or `root/runs/<runID>`), checking that its
    /// manifest exists and every file it lists is present with the recorded size.
    public static func open(root: URL, runID: String? = nil) throws -> PublishedRun {
        let dir: URL
        if let runID {
            dir = root.appendingPathComponent("runs").appendingPathComponent(runID)
        } else {
            let link = root.appendingPathComponent(currentLink)
            guard let target = try? FileManager.default.destinationOfSymbolicLink(atPath: link.path) else {
                throw ArtifactError(
                    file: link.path, message: "no published run (missing 'current' link); run the pipeline first")
            }
            dir = root.appendingPathComponent(target)
        }
        return try open(directory: dir)
    }

    /// Opens the run in `directory`.
    public static func open(directory: URL) throws -> PublishedRun {
        let manifestURL = directory.appendingPathComponent(manifestName)
        guard let data = try? Data(contentsOf: manifestURL) else {
            throw ArtifactError(
                file: manifestURL.path, message: "missing manifest: the run is incomplete or not a Mosaic run")
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: data) } catch {
            throw ArtifactError(file: manifestURL.path, message: "unreadable manifest: \(error)")
        }
        guard manifest.schemaVersion == Manifest.currentSchemaVersion else {
            throw ArtifactError(
                file: manifestURL.path,
                message: "manifest schema version \(manifest.schemaVersion), expected \(Manifest.currentSchemaVersion)")
        }
        for artifact in manifest.artifacts {
            for f in artifact.files {
                let path = directory.appendingPathComponent(f.path).path
                let attributes = try? FileManager.default.attributesOfItem(atPath: path)
                guard let size = (attributes?[.size] as? NSNumber)?.int64Value else {
                    throw ArtifactError(file: path, message: "listed in the manifest of \(manifest.runID) but missing")
                }
                guard size == f.bytes else {
                    throw ArtifactError(
                        file: path, message: "size \(size) bytes, manifest says \(f.bytes) (truncated or replaced?)")
                }
            }
        }
        return PublishedRun(directory: directory.resolvingSymlinksInPath(), manifest: manifest)
    }

    /// Absolute paths of the files of `artifact`, in rank order.
    public func paths(of artifact: String) throws -> [String] {
        guard let a = manifest.artifact(artifact) else {
            throw ArtifactError(
                file: directory.appendingPathComponent(Self.manifestName).path,
                message: "no artifact '\(artifact)' (has: \(manifest.artifacts.map(\.name).joined(separator: ", ")))")
        }
        return a.files.map { directory.appendingPathComponent($0.path).path }
    }
}

extension PublishedRun {
    /// Recomputes the checksum of every file whose manifest entry has one; throws naming the
    /// first file that differs.
    public func verifyChecksums() throws {
        for artifact in manifest.artifacts {
            for f in artifact.files {
                guard let expected = f.checksum else { continue }
                let path = directory.appendingPathComponent(f.path).path
                let actual = try FileChecksum.of(path: path)
                guard actual == expected else {
                    throw ArtifactError(
                        file: path,
                        message: "checksum \(actual), manifest of \(manifest.runID) says \(expected) (corrupted?)")
                }
            }
        }
    }
}
