import Foundation

/// An importance matrix (`llama-imatrix` output): for each weight, the mean square activation of each
/// input column (one row per expert for 3-D weights), which the weighted K-quant and legacy quantizers
/// use as `quant_weights`. The values are those llama-quantize hands to the quantizer (llama.cpp
/// 0c1e57098, `tools/quantize/quantize.cpp` `load_imatrix` and `common/imatrix-loader.cpp`):
///
/// - GGUF (what `llama-imatrix` writes by default): tensors `NAME.in_sum2` (F32 sums of squares) and
///   `NAME.counts` (F32, one per expert), metadata `imatrix.datasets` (string array),
///   `imatrix.chunk_count` and `imatrix.chunk_size` (u32; all three required). Value =
///   `sum / Float(lround(count))` per expert, or 1 where the count is 0.
/// - Legacy `.dat` (`--output-format dat`): i32 entry count, then per entry i32 name length, the name,
///   i32 `ncall`, i32 value count, that many f32; optionally i32 chunk count, i32 dataset name length
///   and the name. Value = `sum / Float(ncall)` (the sums as they are when `ncall` is 0).
///
/// Readers check every length against the bytes left before allocating.
public struct ImportanceMatrix: Sendable {
    /// Values by tensor name (llama.cpp names).
    public var entries: [String: [Float]]
    /// Datasets the matrix was computed on.
    public var datasets: [String]
    /// Chunks of text it was computed on (0 when the file does not say).
    public var chunkCount: Int
    /// True for the legacy `.dat` format.
    public var isLegacy: Bool

    public init(entries: [String: [Float]], datasets: [String] = [], chunkCount: Int = 0, isLegacy: Bool = false) {
        self.entries = entries
        self.datasets = datasets
        self.chunkCount = chunkCount
        self.isLegacy = isLegacy
    }

    /// Reads a GGUF or legacy imatrix file.
    /// - Throws: `ScalpelError.invalid` naming the file (and entry) for anything malformed.
    public static func read(_ path: String) throws -> ImportanceMatrix {
        let file = try MappedFile(path: path)
        if file.bytes.count >= 4 && file.bytes.starts(with: Array("GGUF".utf8)) {
            return try readGGUF(path)
        }
        return try readLegacy(file.bytes, path: path)
    }

    /// `--include-weights` / `--exclude-weights`: keeps the entries whose name contains one of
    /// `include` (all when empty), then drops those containing one of `exclude`.
    public func filtered(include: [String], exclude: [String]) -> ImportanceMatrix {
        var m = self
        if !exclude.isEmpty { m.entries = m.entries.filter { e in !exclude.contains(where: { e.key.contains($0) }) } }
        if !include.isEmpty { m.entries = m.entries.filter { e in include.contains(where: { e.key.contains($0) }) } }
        return m
    }

    /// The metadata llama-quantize adds to a file quantized with this matrix, given the path as typed.
    public func metadata(path: String) -> [(String, MetadataValue)] {
        func clip(_ s: String) -> String {  // llama-quantize copies at most 127 bytes
            var bytes = Array(s.utf8.prefix(127))
            while String(bytes: bytes, encoding: .utf8) == nil && !bytes.isEmpty { bytes.removeLast() }
            return String(decoding: bytes, as: UTF8.self)
        }
        var m: [(String, MetadataValue)] = [("quantize.imatrix.file", .string(clip(path)))]
        if let d = datasets.first { m.append(("quantize.imatrix.dataset", .string(clip(d)))) }
        m.append(("quantize.imatrix.entries_count", .uint32(UInt32(truncatingIfNeeded: entries.count))))
        if chunkCount > 0 { m.append(("quantize.imatrix.chunks_count", .uint32(UInt32(truncatingIfNeeded: chunkCount)))) }
        return m
    }

    // MARK: - GGUF

    static func readGGUF(_ path: String) throws -> ImportanceMatrix {
        func fail(_ tensor: String?, _ reason: String) -> ScalpelError { .invalid(file: path, tensor: tensor, reason: reason) }
        let ckpt = try CheckpointReader.open(path)
        let meta = ckpt.metadata
        guard meta["imatrix.datasets"] != nil, let chunks = meta["imatrix.chunk_count"]?.intValue, meta["imatrix.chunk_size"] != nil else {
            throw fail(nil, "not an imatrix: missing imatrix.datasets, imatrix.chunk_count or imatrix.chunk_size metadata")
        }
        var datasets: [String] = []
        if case .array(_, let items)? = meta["imatrix.datasets"] { datasets = items.compactMap(\.stringValue) }
        guard !ckpt.tensors.isEmpty else { throw fail(nil, "no data: the imatrix has no tensors") }
        var sums: [String: Int] = [:], counts: [String: Int] = [:]
        for (i, t) in ckpt.tensors.enumerated() {
            if t.name.hasSuffix(".in_sum2") { sums[String(t.name.dropLast(8))] = i }
            else if t.name.hasSuffix(".counts") { counts[String(t.name.dropLast(7))] = i }
        }
        var entries: [String: [Float]] = [:]
        for name in Set(sums.keys).union(counts.keys) {
            guard let si = sums[name], let ci = counts[name] else { throw fail(name, "mismatched sums and counts (one of .in_sum2 / .counts is missing)") }
            guard ckpt.tensors[si].type == .plain(.f32), ckpt.tensors[ci].type == .plain(.f32) else {
                throw fail(name, "sums and counts must be F32")
            }
            let s = try floats(ckpt, si), c = try floats(ckpt, ci)
            guard !c.isEmpty, s.count % c.count == 0 else {
                throw fail(name, "\(s.count) sums are not a whole number of rows for \(c.count) counts")
            }
            let n = s.count / c.count
            var v = [Float](repeating: 1, count: s.count)
            for j in 0..<c.count {
                guard c[j].isFinite, abs(c[j]) < 9e18 else { throw fail(name, "count \(c[j]) is not a finite number") }
                let count = Float(Int64(c[j].rounded(.toNearestOrAwayFromZero)))
                if count > 0 { for i in 0..<n { v[j * n + i] = s[j * n + i] / count } }
            }
            entries[name] = v
        }
        return ImportanceMatrix(entries: entries, datasets: datasets, chunkCount: chunks, isLegacy: false)
    }

    private static func floats(_ ckpt: Checkpoint, _ i: Int) throws -> [Float] {
        let bytes = try ckpt.view(at: i).bytes
        let n = bytes.count / 4
        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<(n * 4)])) }
        return out
    }

    // MARK: - legacy .dat

    static func readLegacy(_ bytes: UnsafeRawBufferPointer, path: String) throws -> ImportanceMatrix {
        var offset = 0
        func fail(_ tensor: String?, _ reason: String) -> ScalpelError { .invalid(file: path, tensor: tensor, reason: reason) }
        func int32(_ what: String, _ tensor: String? = nil) throws -> Int {
            guard bytes.count - offset >= 4 else { throw fail(tensor, "truncated: no \(what) at byte \(offset)") }
            defer { offset += 4 }
            return Int(Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: Int32.self)))
        }
        let count = try int32("entry count")
        guard count >= 1 else { throw fail(nil, "not an imatrix: \(count) entries (neither GGUF nor a legacy .dat file)") }
        // Each entry takes at least 16 bytes: reject impossible counts before reserving anything.
        guard count <= (bytes.count - offset) / 16 else { throw fail(nil, "\(count) entries cannot fit in \(bytes.count) bytes") }
        var entries: [String: [Float]] = [:]
        entries.reserveCapacity(count)
        for e in 0..<count {
            let length = try int32("name length of entry \(e + 1)")
            guard length >= 0, length <= bytes.count - offset else { throw fail(nil, "entry \(e + 1): name length \(length) exceeds the file") }
            let nameBytes = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
            offset += length
            // The reader stops at the first NUL, as llama.cpp's std::string from a C string does.
            let name = String(decoding: nameBytes.prefix(while: { $0 != 0 }), as: UTF8.self)
            let ncall = try int32("call count", name)
            let n = try int32("value count", name)
            guard n >= 1 else { throw fail(name, "\(n) values") }
            guard n <= (bytes.count - offset) / 4 else { throw fail(name, "\(n) values exceed the \(bytes.count - offset) bytes left") }
            var v = [Float](repeating: 0, count: n)
            v.withUnsafeMutableBytes { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + 4 * n)])) }
            offset += 4 * n
            if ncall > 0 {
                let d = Float(ncall)
                for i in v.indices { v[i] /= d }
            }
            entries[name] = v
        }
        var chunks = 0, datasets: [String] = []
        if bytes.count - offset >= 4 {
            chunks = try int32("chunk count")
            if bytes.count - offset >= 4 {
                let length = try int32("dataset name length")
                if length > 0 && length <= bytes.count - offset {
                    let d = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + length)])
                    datasets.append(String(decoding: d.prefix(while: { $0 != 0 }), as: UTF8.self))
                }
            }
        }
        return ImportanceMatrix(entries: entries, datasets: datasets, chunkCount: chunks, isLegacy: true)
    }
}
