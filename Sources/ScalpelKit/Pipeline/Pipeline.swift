import Dispatch
import Foundation
import Synchronization

/// The one place Scalpel writes checkpoints. Every command opens its inputs, builds a `Plan`, and hands
/// it to `write` (or to `predict` for `--dry-run`), then renders a report from the `WriteResult`.
///
/// `write` refuses an output that is, or would replace or sit inside, any file or folder the inputs
/// resolve to (compared by device and inode, after resolving symbolic links), and an existing output
/// unless `force`. Files are written to a temporary name in the destination folder and renamed into
/// place (folders: a temporary sibling folder), so a failed run leaves nothing and other processes see
/// either the old output or the whole new one.
public enum Pipeline {
    /// How to write.
    public struct Options: Sendable {
        /// Replace an existing output file or folder.
        public var force: Bool
        /// Called after each tensor is written (on a background queue).
        public var progress: (@Sendable (ProgressEvent) -> Void)?

        public init(force: Bool = false, progress: (@Sendable (ProgressEvent) -> Void)? = nil) {
            self.force = force
            self.progress = progress
        }
    }

    /// The files `plan` would write and their exact sizes (for `.zst` outputs, the size before
    /// compression), computed by the same layout code `write` uses. Writes nothing.
    public static func predict(_ plan: Plan) throws -> [PlannedFile] {
        let compressed = plan.destination.zstdLevel != nil
        return try files(plan).map { name, content in
            PlannedFile(path: finalPath(plan.destination, name), bytes: try size(content), tensors: content.tensorCount, compressed: compressed)
        }
    }

    /// Writes `plan` and returns what was written and what each computation measured.
    /// - Throws: `ScalpelError.invalid` when the output would overwrite an input, or exists and
    ///   `options.force` is false; any error of the plan's computations or of writing (the output is
    ///   then left as it was).
    public static func write(_ plan: Plan, options: Options = Options()) throws -> WriteResult {
        let dest = plan.destination
        try OutputGuard.check(dest.path, against: plan.inputs, force: options.force)
        let start = DispatchTime.now()
        let planned = try files(plan)
        let counter = ProgressCounter(tensors: planned.reduce(0) { $0 + $1.content.tensorCount }, bytes: plan.tensorBytes,
                                      start: start, sink: options.progress)
        var outcomes: [String: TensorOutcome] = [:]
        var written: [PlannedFile] = []
        if dest.isFolder {
            let temp = try TemporaryFolder(finalPath: dest.path)
            for (name, content) in planned {
                let path = temp.path + "/" + name!
                let bytes = try write(content, to: path, zstdLevel: nil, counter: counter, outcomes: &outcomes, displayPath: dest.path + "/" + name!)
                written.append(PlannedFile(path: dest.path + "/" + name!, bytes: bytes, tensors: content.tensorCount, compressed: false))
            }
            try OutputGuard.replacing(dest.path, force: options.force) { try temp.commit() }
        } else {
            let content = planned[0].content
            let out = try OutputFile(path: dest.path, zstdLevel: dest.zstdLevel)
            if case .layout(let layout) = content {
                outcomes = try layout.write(into: out, written: counter.written)
            }
            try OutputGuard.replacing(dest.path, force: options.force) { try out.commit() }
            let bytes = (try? FileManager.default.attributesOfItem(atPath: dest.path)[.size] as? Int) ?? 0
            written.append(PlannedFile(path: dest.path, bytes: bytes, tensors: content.tensorCount, compressed: dest.zstdLevel != nil))
        }
        return WriteResult(files: written, outcomes: outcomes, tensors: plan.tensors.count, tensorBytes: plan.tensorBytes,
                           seconds: Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9)
    }

    /// The files of a plan: (name inside the folder, or nil for a single-file output; content).
    static func files(_ plan: Plan) throws -> [(name: String?, content: PlannedContent)] {
        let dest = plan.destination
        switch dest.kind {
        case .safetensors:
            return [(nil, .layout(try SafetensorsWriter.layout(plan.tensors, metadata: plan.metadata, file: dest.path)))]
        case .gguf:
            return [(nil, .layout(try GGUFWriter.layout(plan.tensors, metadata: plan.metadata, alignment: plan.ggufAlignment, file: dest.path)))]
        case .sharded(let shardBytes):
            let shards = try ShardedSafetensors.files(plan.tensors, metadata: plan.metadata, shardBytes: shardBytes, folder: dest.path)
            return companions(plan) + shards.map { ($0.name, $0.content) }
        case .adapter:
            let weights = try SafetensorsWriter.layout(plan.tensors, metadata: plan.metadata, file: dest.path + "/" + PEFTAdapter.weightsFile)
            return companions(plan) + [(PEFTAdapter.weightsFile, .layout(weights))]
        }
    }

    private static func companions(_ plan: Plan) -> [(name: String?, content: PlannedContent)] {
        plan.companions.map { extra in
            switch extra {
            case .copy(let name, let from): return (name, .copy(from: from))
            case .write(let name, let contents): return (name, .bytes(contents))
            }
        }
    }

    private static func finalPath(_ dest: Destination, _ name: String?) -> String {
        name.map { dest.path + "/" + $0 } ?? dest.path
    }

    private static func size(_ content: PlannedContent) throws -> Int {
        switch content {
        case .layout(let l): return l.byteCount
        case .bytes(let b): return b.count
        case .copy(let from):
            guard let n = try? FileManager.default.attributesOfItem(atPath: from)[.size] as? Int else {
                throw ScalpelError.io(file: from, reason: "cannot read its size")
            }
            return n
        }
    }

    /// Writes one file of a folder output; returns its size.
    private static func write(_ content: PlannedContent, to path: String, zstdLevel: Int?, counter: ProgressCounter,
                              outcomes: inout [String: TensorOutcome], displayPath: String) throws -> Int {
        switch content {
        case .layout(let layout):
            let out = try OutputFile(path: path, zstdLevel: zstdLevel)
            outcomes.merge(try layout.write(into: out, written: counter.written)) { $1 }
            try out.commit()
            return layout.byteCount
        case .bytes(let bytes):
            let out = try OutputFile(path: path)
            try out.write(bytes)
            try out.commit()
            return bytes.count
        case .copy(let from):
            do { try FileManager.default.copyItem(atPath: from, toPath: path) } catch {
                throw ScalpelError.io(file: from, reason: "cannot copy into \(displayPath): \(error.localizedDescription)")
            }
            return try size(content)
        }
    }
}

extension PlannedContent {
    /// Tensors stored in the file.
    var tensorCount: Int {
        if case .layout(let l) = self { return l.items.count }
        return 0
    }
}

/// Counts written tensors and reports progress; called from the writer's serial queues, one file after
/// another.
final class ProgressCounter: Sendable {
    private let state = Mutex<(tensors: Int, bytes: Int)>((0, 0))
    private let tensorCount: Int
    private let byteCount: Int
    private let start: DispatchTime
    private let sink: (@Sendable (ProgressEvent) -> Void)?

    init(tensors: Int, bytes: Int, start: DispatchTime, sink: (@Sendable (ProgressEvent) -> Void)?) {
        tensorCount = tensors
        byteCount = bytes
        self.start = start
        self.sink = sink
    }

    /// Records one written tensor.
    var written: @Sendable (OutputTensor) -> Void {
        { [self] t in
            let (done, bytes) = state.withLock { s in
                s.tensors += 1
                s.bytes += t.byteCount
                return (s.tensors, s.bytes)
            }
            sink?(ProgressEvent(tensor: t.name, action: t.action, type: t.type, shape: t.shape, tensorsDone: done,
                                tensorCount: tensorCount, bytesDone: bytes, byteCount: byteCount,
                                seconds: Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9))
        }
    }
}
