import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// PyTorch checkpoints written by `torch.save` (`pytorch_model.bin`, `*.pt`, `adapter_model.bin`) and
/// sharded `pytorch_model.bin.index.json` folders, read without running pickle code.
///
/// A torch file is a zip archive of stored entries: `NAME/data.pkl` (the pickled object), `NAME/data/KEY`
/// (the raw little-endian bytes of each storage), `NAME/byteorder`, `NAME/version`. The archive is mapped
/// once; the pickle is read by `RestrictedUnpickler`, which refuses any global outside the tensor and
/// container set. The object must be a dict (nested dicts and lists are flattened with `.`-joined names)
/// whose leaves are tensors; other leaves (ints, strings, None) are skipped. A contiguous tensor is a
/// zero-copy view of its storage's bytes (shared storages are fine); a non-contiguous view (strides that
/// are not row-major) is gathered into a private temporary file that is unlinked at once.
public enum TorchCheckpoint {
    /// True for a zip archive (the modern `torch.save` format).
    static func hasZipMagic(_ bytes: UnsafeRawBufferPointer) -> Bool { ZipArchive.hasMagic(bytes) }

    /// True for the legacy (pre-1.6, non-zip) `torch.save` format: a pickle that starts with the
    /// protocol opcode and torch's magic number 0x1950a86a20f9469cfc6c as a 10-byte LONG1.
    static func isLegacy(_ bytes: UnsafeRawBufferPointer) -> Bool {
        let head: [UInt8] = [0x8A, 0x0A, 0x6C, 0xFC, 0x9C, 0x46, 0xF9, 0x20, 0x6A, 0xA8, 0x50, 0x19]
        return bytes.count >= 14 && bytes[0] == 0x80 && bytes[1] <= 5 && (0..<12).allSatisfy { bytes[2 + $0] == head[$0] }
    }

    static let legacyMessage = "is a legacy (non-zip) torch.save file, which Scalpel does not read: re-save it with torch.save(obj, path) from torch >= 1.6"

    /// One tensor read from an archive, before the files are assembled into a checkpoint.
    struct Parsed {
        var info: TensorInfo
        /// Absolute start in the archive, for zero-copy tensors; nil for gathered ones.
        var start: Int?
        var ref: TorchTensorRef
        var storageStart: Int
    }

    /// Opens one torch file.
    static func open(file path: String, mapped: MappedFile) throws -> Checkpoint {
        var files: [MappedFile] = []
        var tensors: [TensorInfo] = []
        var locations: [Checkpoint.Location] = []
        try append(path, mapped, files: &files, tensors: &tensors, locations: &locations, seen: [:])
        return Checkpoint(path: path, format: .pytorch, tensors: tensors, locations: locations, files: files,
                          metadata: Metadata(), fileBytes: mapped.bytes.count)
    }

    /// Opens the shards a `pytorch_model.bin.index.json` names, as one model; every tensor of the weight
    /// map must be in the shard it names, and every tensor of every shard in the weight map.
    static func open(indexPath: String) throws -> Checkpoint {
        let folder = PathName.folder(indexPath)
        let json: JSONValue
        do { json = try JSONParser.parse(try readSmallFile(indexPath)) } catch let e as JSONParser.Failure {
            throw ScalpelError.malformed(file: indexPath, tensor: nil, reason: e.description)
        }
        guard let weightMap = json["weight_map"]?.objectValue else {
            throw ScalpelError.malformed(file: indexPath, tensor: nil, reason: "no weight_map object")
        }
        var shardOf: [String: String] = [:]
        for (tensor, file) in weightMap {
            guard let f = file.stringValue, !f.contains("/"), f != "..", !f.isEmpty else {
                throw ScalpelError.malformed(file: indexPath, tensor: tensor, reason: "weight_map value is not a file name in the same folder")
            }
            shardOf[tensor] = f
        }
        let shards = Set(shardOf.values).sorted()
        var foundIn: [String: String] = [:]
        let ckpt = try open(folder: folder, shards: shards, path: indexPath, foundIn: &foundIn)
        for t in ckpt.tensors {
            let file = foundIn[t.name] ?? ""
            guard let named = shardOf[t.name] else {
                throw ScalpelError.malformed(file: indexPath, tensor: t.name, reason: "tensor is in \(file) but not in weight_map")
            }
            if named != file {
                throw ScalpelError.malformed(file: indexPath, tensor: t.name, reason: "weight_map names \(named) but the tensor is in \(file)")
            }
        }
        if ckpt.tensors.count != shardOf.count {
            let missing = shardOf.keys.filter { ckpt.info(named: $0) == nil }.sorted()
            throw ScalpelError.malformed(file: indexPath, tensor: missing.first, reason: "tensor in weight_map is missing from its shard")
        }
        return ckpt
    }

    /// Opens the given torch files of `folder` as one model (tensor names unique across them).
    static func open(folder: String, shards: [String], path: String? = nil) throws -> Checkpoint {
        var foundIn: [String: String] = [:]
        return try open(folder: folder, shards: shards, path: path, foundIn: &foundIn)
    }

    private static func open(folder: String, shards: [String], path: String?, foundIn seen: inout [String: String]) throws -> Checkpoint {
        var files: [MappedFile] = []
        var tensors: [TensorInfo] = []
        var locations: [Checkpoint.Location] = []
        var total = 0
        for name in shards {
            let p = folder + "/" + name
            let mapped = try MappedFile(path: p)
            total += mapped.bytes.count
            let before = tensors.count
            try append(p, mapped, files: &files, tensors: &tensors, locations: &locations, seen: seen)
            for t in tensors[before...] { seen[t.name] = name }
        }
        return Checkpoint(path: path ?? folder, format: .pytorch, tensors: tensors, locations: locations, files: files,
                          metadata: Metadata(), fileBytes: total)
    }

    /// Parses one archive and appends its tensors (and its mapped file, plus a gather file if needed).
    private static func append(_ path: String, _ mapped: MappedFile, files: inout [MappedFile], tensors: inout [TensorInfo],
                               locations: inout [Checkpoint.Location], seen: [String: String]) throws {
        let parsed = try parse(path, mapped.bytes)
        let archiveIndex = files.count
        files.append(mapped)
        let gathered = parsed.filter { $0.start == nil }
        var gatherStarts: [Int] = []
        if !gathered.isEmpty {
            files.append(try gather(gathered, from: mapped.bytes, path: path, starts: &gatherStarts))
        }
        var g = 0
        for p in parsed {
            if let other = seen[p.info.name] {
                throw ScalpelError.malformed(file: path, tensor: p.info.name, reason: "tensor also appears in \(other)")
            }
            tensors.append(p.info)
            if let s = p.start {
                locations.append(.init(file: archiveIndex, start: s))
            } else {
                locations.append(.init(file: archiveIndex + 1, start: gatherStarts[g]))
                g += 1
            }
        }
    }

    /// Reads the directory and the pickle of one archive.
    static func parse(_ path: String, _ bytes: UnsafeRawBufferPointer) throws -> [Parsed] {
        if !ZipArchive.hasMagic(bytes) {
            if isLegacy(bytes) { throw ScalpelError.invalid(file: path, tensor: nil, reason: legacyMessage) }
            throw ScalpelError.malformed(file: path, tensor: nil, reason: "is not a torch.save zip archive")
        }
        let zip = try ZipArchive(bytes, file: path)
        let pickles = zip.entries.filter { $0.name.hasSuffix("/data.pkl") && $0.name.dropLast(9).firstIndex(of: "/") == nil }
        guard pickles.count == 1, let pkl = pickles.first else {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: pickles.isEmpty
                ? "zip archive has no NAME/data.pkl entry (not a torch.save file)"
                : "zip archive has \(pickles.count) data.pkl entries")
        }
        let prefix = String(pkl.name.dropLast(8))
        if let bo = zip.entry(prefix + "byteorder") {
            let s = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[bo.dataStart..<(bo.dataStart + bo.size)]), as: UTF8.self)
            guard s == "little" else { throw ScalpelError.invalid(file: path, tensor: nil, reason: "byteorder is '\(s)'; only little-endian archives are read") }
        }
        var unpickler = RestrictedUnpickler(UnsafeRawBufferPointer(rebasing: bytes[pkl.dataStart..<(pkl.dataStart + pkl.size)]), file: path)
        let root = try unpickler.load()
        guard case .dict = root else {
            throw ScalpelError.invalid(file: path, tensor: nil, reason: "holds a pickled \(root.kind), not a dict of tensors (a state dict)")
        }
        var flat: [(String, TorchTensorRef)] = []
        try flatten(root, prefix: "", depth: 0, into: &flat, path: path)
        var out: [Parsed] = []
        var names = Set<String>()
        for (name, t) in flat {
            guard names.insert(name).inserted else {
                throw ScalpelError.malformed(file: path, tensor: name, reason: "duplicate tensor name")
            }
            out.append(try locate(name, t, archive: zip, prefix: prefix, path: path))
        }
        return out
    }

    /// Collects the tensors of nested dicts and lists, in insertion order.
    private static func flatten(_ v: PickleValue, prefix: String, depth: Int, into out: inout [(String, TorchTensorRef)], path: String) throws {
        guard depth <= 64 else { throw ScalpelError.malformed(file: path, tensor: prefix, reason: "containers nested deeper than 64") }
        func join(_ k: String) -> String { prefix.isEmpty ? k : prefix + "." + k }
        switch v {
        case .tensor(let t): out.append((prefix, t))
        case .dict(let d):
            for (k, value) in d.entries {
                let key: String
                switch k {
                case .string(let s): key = s
                case .int(let i): key = String(i)
                default: continue
                }
                try flatten(value, prefix: join(key), depth: depth + 1, into: &out, path: path)
            }
        case .list(let l):
            for (i, value) in l.items.enumerated() { try flatten(value, prefix: join(String(i)), depth: depth + 1, into: &out, path: path) }
        case .tuple(let t):
            for (i, value) in t.enumerated() { try flatten(value, prefix: join(String(i)), depth: depth + 1, into: &out, path: path) }
        default: break
        }
    }

    /// Checks one tensor against its storage entry and decides zero-copy or gather.
    private static func locate(_ name: String, _ t: TorchTensorRef, archive: ZipArchive, prefix: String, path: String) throws -> Parsed {
        func bad(_ reason: String) -> ScalpelError { .malformed(file: path, tensor: name, reason: reason) }
        guard let entry = archive.entry(prefix + "data/" + t.storage.key) else {
            throw bad("storage \(t.storage.key) has no data/\(t.storage.key) entry in the archive")
        }
        let storageElem = max(1, t.storage.dtype.bitWidth / 8)
        let (storageBytes, o1) = t.storage.numel.multipliedReportingOverflow(by: storageElem)
        guard !o1, storageBytes <= entry.size else {
            throw bad("storage \(t.storage.key) of \(t.storage.numel) elements needs more than its \(entry.size) bytes")
        }
        let elem = t.dtype.bitWidth / 8
        guard elem > 0, t.dtype.bitWidth % 8 == 0 else { throw bad("dtype \(t.dtype.rawValue) is not byte-sized") }
        guard let count = t.shape.checkedProduct(), case let (byteCount, false) = count.multipliedReportingOverflow(by: elem) else {
            throw bad("shape \(t.shape) overflows")
        }
        let info = TensorInfo(name: name, type: .plain(t.dtype), shape: t.shape, offset: 0, byteCount: byteCount)
        if count == 0 { return Parsed(info: info, start: entry.dataStart, ref: t, storageStart: entry.dataStart) }
        // Largest element index reached, then the byte extent, all overflow-checked.
        var last = t.offset
        for (d, s) in zip(t.shape, t.stride) {
            let (m, o) = (d - 1).multipliedReportingOverflow(by: s)
            let (n, o2) = last.addingReportingOverflow(m)
            guard !o, !o2 else { throw bad("strides overflow") }
            last = n
        }
        let (endElem, o3) = last.addingReportingOverflow(1)
        let (endByte, o4) = endElem.multipliedReportingOverflow(by: elem)
        guard !o3, !o4, endByte <= storageBytes else {
            throw bad("view (offset \(t.offset), size \(t.shape), stride \(t.stride)) reaches byte \(o4 ? Int.max : endByte) of a \(storageBytes)-byte storage")
        }
        var contiguous = true
        var expected = 1
        for (d, s) in zip(t.shape, t.stride).reversed() where d != 1 {
            if s != expected { contiguous = false; break }
            expected *= d
        }
        let start = entry.dataStart + t.offset * elem
        return Parsed(info: info, start: contiguous ? start : nil, ref: t, storageStart: entry.dataStart)
    }

    /// Gathers non-contiguous views into one temporary file (unlinked once mapped); returns the mapping
    /// and each tensor's start in it.
    private static func gather(_ parsed: [Parsed], from bytes: UnsafeRawBufferPointer, path: String, starts: inout [Int]) throws -> MappedFile {
        let tmpDir = ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp"
        let out = try OutputFile(path: tmpDir + "/scalpel-torch-gather-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        var at = 0
        for p in parsed {
            starts.append(at)
            let elem = p.ref.dtype.bitWidth / 8
            let n = p.info.byteCount
            let buf = UnsafeMutableRawBufferPointer.allocate(byteCount: max(n, 1), alignment: 16)
            defer { buf.deallocate() }
            let shape = p.ref.shape, stride = p.ref.stride
            let rank = shape.count
            var index = [Int](repeating: 0, count: rank)
            let base = p.storageStart
            for k in 0..<p.info.elementCount {
                var e = p.ref.offset
                for d in 0..<rank { e += index[d] * stride[d] }
                let src = base + e * elem
                (buf.baseAddress! + k * elem).copyMemory(from: bytes.baseAddress! + src, byteCount: elem)
                var d = rank - 1
                while d >= 0 {
                    index[d] += 1
                    if index[d] < shape[d] { break }
                    index[d] = 0
                    d -= 1
                }
            }
            try out.write(UnsafeRawBufferPointer(rebasing: buf[0..<n]))
            at += n
        }
        try out.commit()
        defer { unlink(out.path) }
        return try MappedFile(path: out.path)
    }
}
