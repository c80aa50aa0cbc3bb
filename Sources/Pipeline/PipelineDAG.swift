import Foundation

/// A nightly DAG file: `set NAME=value` lines (the variables' defaults) and `stage FILE.job`
/// lines (paths relative to the DAG file). The edges are not written: a stage depends on the
/// stages that write what it reads (an input equal to, inside, or holding another stage's
/// output).
public struct PipelineDAG: Sendable {
    /// The DAG file.
    public var file: String
    /// The `set` lines, in order.
    public var defaults: [String: String]
    /// The stages in file order.
    public var stages: [StageSpec]

    public init(file: String, defaults: [String: String], stages: [StageSpec]) {
        self.file = file
        self.defaults = defaults
        self.stages = stages
    }

    /// The DAG with every MPI stage (spec `RANKS` > 1) on `ranks` ranks; serial stages keep 1.
    public func withRanks(_ ranks: Int) -> PipelineDAG {
        var dag = self
        for i in dag.stages.indices where dag.stages[i].ranks > 1 { dag.stages[i].ranks = ranks }
        return dag
    }

    /// Reads a DAG file and its stage specs.
    public static func read(_ path: String) throws -> PipelineDAG {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw PipelineError("\(path): cannot read the DAG file")
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        var defaults: [String: String] = [:]
        var stages: [StageSpec] = []
        for (i, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let words = line.split(separator: " ", maxSplits: 1).map(String.init)
            switch (words.first, words.count) {
            case ("set", 2):
                guard let eq = words[1].firstIndex(of: "=") else {
                    throw PipelineError("\(path):\(i + 1): expected 'set NAME=value'")
                }
                defaults[String(words[1][..<eq])] = String(words[1][words[1].index(after: eq)...])
            case ("stage", 2):
                let specPath = folder.appendingPathComponent(words[1].trimmingCharacters(in: .whitespaces)).path
                do { stages.append(try StageSpec.read(specPath)) } catch {
                    throw PipelineError("\(path):\(i + 1): \(error)")
                }
            default:
                throw PipelineError("\(path):\(i + 1): expected 'set NAME=value' or 'stage FILE.job', got '\(line)'")
            }
        }
        var seen: Set<String> = []
        for s in stages where !seen.insert(s.name).inserted {
            throw PipelineError("\(path): two stages are named '\(s.name)'")
        }
        return PipelineDAG(file: path, defaults: defaults, stages: stages)
    }

    /// The stages in dependency order (file order among the ready ones), with their paths
    /// expanded by `variables` and their dependencies found.
    public func plan(variables: Variables) throws -> PipelinePlan {
        var planned: [PlannedStage] = []
        var writer: [String: String] = [:]
        for s in stages {
            let context = "\(s.file) (stage \(s.name))"
            let inputs = try s.inputs.map { normalized(try variables.expand($0, context: context)) }
            let outputs = try s.outputs.map { normalized(try variables.expand($0, context: context)) }
            for o in outputs {
                if let other = writer[o] { throw PipelineError("\(context): \(o) is also written by stage \(other)") }
                writer[o] = s.name
            }
            planned.append(PlannedStage(spec: s, inputs: inputs, outputs: outputs, dependencies: []))
        }
        for i in planned.indices {
            var deps: [String] = []
            for j in planned.indices where j != i {
                let writes = planned[i].inputs.contains { input in
                    planned[j].outputs.contains { Self.overlaps(input, $0) }
                }
                if writes { deps.append(planned[j].spec.name) }
            }
            planned[i].dependencies = deps
        }
        // Kahn's algorithm, taking the first ready stage in file order each time.
        var done: Set<String> = []
        var order: [PlannedStage] = []
        var remaining = planned
        while !remaining.isEmpty {
            guard let next = remaining.firstIndex(where: { $0.dependencies.allSatisfy(done.contains) }) else {
                throw PipelineError(
                    "\(file): the stages \(remaining.map(\.spec.name).joined(separator: ", ")) depend on each other (a cycle)"
                )
            }
            done.insert(remaining[next].spec.name)
            order.append(remaining.remove(at: next))
        }
        return PipelinePlan(stages: order)
    }

    /// True when one path is the other or lies inside it.
    static func overlaps(_ a: String, _ b: String) -> Bool {
        a == b || a.hasPrefix(b + "/") || b.hasPrefix(a + "/")
    }

    func normalized(_ path: String) -> String {
        var p = (path as NSString).standardizingPath
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p
    }
}

/// One stage of a plan: its spec with paths expanded, and the stages it waits for.
public struct PlannedStage: Sendable, Equatable {
    public var spec: StageSpec
    public var inputs: [String]
    public var outputs: [String]
    /// Names of the stages that write its inputs.
    public var dependencies: [String]
}

/// The stages of a DAG in an order that runs every stage after its dependencies.
public struct PipelinePlan: Sendable {
    public var stages: [PlannedStage]

    /// The stages to run: all, `only` one (with its dependencies taken as done), or `from` one
    /// and every stage that depends on it directly or not.
    public func selected(only: String? = nil, from: String? = nil) throws -> [PlannedStage] {
        let names = stages.map(\.spec.name)
        for n in [only, from].compactMap({ $0 }) where !names.contains(n) {
            throw PipelineError("no stage '\(n)' (stages: \(names.joined(separator: ", ")))")
        }
        if let only { return stages.filter { $0.spec.name == only } }
        guard let from else { return stages }
        var chosen: Set<String> = [from]
        for s in stages where s.dependencies.contains(where: chosen.contains) { chosen.insert(s.spec.name) }
        return stages.filter { chosen.contains($0.spec.name) }
    }
}
