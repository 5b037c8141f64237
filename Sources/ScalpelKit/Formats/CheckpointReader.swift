import Foundation

/// Opens any checkpoint Scalpel reads, deciding the format from what is on disk.
///
/// - A folder with `adapter_config.json`: a PEFT adapter (`adapter_model.safetensors` inside).
/// - A folder with `*.safetensors.index.json`, or the index file itself, or a folder of `*.safetensors`:
///   one sharded model.
/// - A file starting with the zstd magic (normally `*.zst`): decompressed, then read as below.
/// - A folder with `pytorch_model.bin.index.json` (or the index itself), or a folder of `*.bin`/`*.pt` with
///   no safetensors: PyTorch shards. A zip file: a `torch.save` archive (`TorchCheckpoint`).
/// - A file starting with `GGUF`: GGUF. Anything else: safetensors.
public enum CheckpointReader {
    /// Opens `path`.
    /// - Parameter headerOnly: for zstd inputs, decompress only as much as the header needs; the
    ///   returned checkpoint then has no tensor data (views throw). Uncompressed files are always mapped,
    ///   which costs nothing until data is touched.
    public static func open(_ path: String, headerOnly: Bool = false) throws -> Checkpoint {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ScalpelError.io(file: path, reason: "no such file or folder")
        }
        if isDir.boolValue { return try openFolder(path, headerOnly: headerOnly) }
        if path.hasSuffix(".bin.index.json") || path.hasSuffix(".pt.index.json") { return try TorchCheckpoint.open(indexPath: path) }
        if path.hasSuffix(".index.json") { return try ShardedSafetensors.open(indexPath: path) }
        return try openFile(path, headerOnly: headerOnly)
    }

    private static func openFolder(_ path: String, headerOnly: Bool) throws -> Checkpoint {
        let fm = FileManager.default
        if fm.fileExists(atPath: path + "/adapter_config.json") {
            return try PEFTAdapter.open(folder: path)
        }
        let entries = (try? fm.contentsOfDirectory(atPath: path)) ?? []
        if let index = entries.filter({ $0.hasSuffix(".safetensors.index.json") }).sorted().first {
            return try ShardedSafetensors.open(indexPath: path + "/" + index)
        }
        let shards = entries.filter { $0.hasSuffix(".safetensors") }.sorted()
        if shards.isEmpty {
            if let index = entries.filter({ $0.hasSuffix(".bin.index.json") }).sorted().first {
                return try TorchCheckpoint.open(indexPath: path + "/" + index)
            }
            let torch = entries.filter { $0.hasSuffix(".bin") || $0.hasSuffix(".pt") || $0.hasSuffix(".pth") }.sorted()
            if !torch.isEmpty { return try TorchCheckpoint.open(folder: path, shards: torch) }
        }
        guard !shards.isEmpty else {
            throw ScalpelError.invalid(file: path, tensor: nil, reason: "folder holds no adapter_config.json, *.safetensors.index.json, *.safetensors or pytorch_model.bin")
        }
        return try ShardedSafetensors.open(folder: path, shards: shards)
    }

    /// Opens the bytes of a file already in memory as `openFile` opens a file (tests and fuzz targets).
    static func open(bytes: UnsafeRawBufferPointer, path: String, headerOnly: Bool) throws -> Checkpoint {
        try openFile(path, mapped: MappedFile(copying: bytes, path: path), headerOnly: headerOnly)
    }

    /// Opens one file (safetensors, GGUF, or either zstd-compressed).
    static func openFile(_ path: String, headerOnly: Bool) throws -> Checkpoint {
        try openFile(path, mapped: try MappedFile(path: path), headerOnly: headerOnly)
    }

    /// Opens one file (safetensors, GGUF, or either zstd-compressed).
    ///
    /// A compressed file's header is read and checked first (costing memory in proportion to the
    /// header); only then is the content decompressed, and never past the length the header describes.
    private static func openFile(_ path: String, mapped: MappedFile, headerOnly: Bool) throws -> Checkpoint {
        if Zstd.hasMagic(mapped.bytes) {
            let (header, contentLength) = try openCompressedHeader(path, mapped)
            if headerOnly { return header }
            let plain = try Zstd.decompressToMappedFile(mapped.bytes, path: path, expectedLength: contentLength)
            return try parse(plain, path: path, compressed: true, fileBytes: mapped.bytes.count)
        }
        return try parse(mapped, path: path, compressed: false, fileBytes: mapped.bytes.count)
    }

    private static func parse(_ file: MappedFile, path: String, compressed: Bool, fileBytes: Int) throws -> Checkpoint {
        let bytes = file.bytes
        if !compressed, TorchCheckpoint.hasZipMagic(bytes) || TorchCheckpoint.isLegacy(bytes) {
            return try TorchCheckpoint.open(file: path, mapped: file)
        }
        if GGUFReader.hasMagic(bytes) {
            let h = try GGUFReader.parse(bytes, fileLength: bytes.count, file: path)
            return Checkpoint(path: path, format: .gguf, compressed: compressed, tensors: h.tensors,
                              locations: h.tensors.map { .init(file: 0, start: h.dataStart + $0.offset) },
                              files: [file], metadata: h.metadata, fileBytes: fileBytes, alignment: h.alignment)
        }
        if let kind = ForeignFile.kind(bytes) {
            throw ScalpelError.malformed(file: path, tensor: nil, reason: "is \(kind), not a safetensors or GGUF checkpoint")
        }
        let h = try SafetensorsHeader.parse(bytes, fileLength: bytes.count, file: path)
        return Checkpoint(path: path, format: .safetensors, compressed: compressed, tensors: h.tensors,
                          locations: h.tensors.map { .init(file: 0, start: h.dataStart + $0.offset) },
                          files: [file], metadata: h.metadata, fileBytes: fileBytes)
    }

    /// The most bytes of a compressed file's content read to find its header (a safetensors header is
    /// at most 100 MB by the format; a GGUF header with a large vocabulary is a few tens of MB).
    static let maxCompressedHeaderBytes = 128 << 20

    /// Reads the header of a zstd-compressed file by decompressing a growing prefix (4x each time), and
    /// returns it with the length of the content it describes (an upper bound for GGUF, whose last
    /// padding may be missing). A header that claims more bytes than the content holds is found by
    /// counting the decompressed bytes, not by storing them.
    private static func openCompressedHeader(_ path: String, _ mapped: MappedFile) throws -> (Checkpoint, Int) {
        var limit = 1 << 16
        while true {
            let prefix = try Zstd.decompressPrefix(mapped.bytes, limit: limit, path: path)
            let complete = prefix.count < limit
            do {
                return try prefix.withUnsafeBytes { bytes in
                    if GGUFReader.hasMagic(bytes) {
                        let h = try GGUFReader.parse(bytes, fileLength: complete ? bytes.count : nil, file: path)
                        var end = h.dataStart
                        for t in h.tensors {
                            let (e, o) = (h.dataStart + t.offset).addingReportingOverflow(t.byteCount + h.alignment)
                            end = o ? Int.max : max(end, e)
                        }
                        return (Checkpoint(path: path, format: .gguf, compressed: true, tensors: h.tensors, locations: [],
                                           files: [], metadata: h.metadata, fileBytes: mapped.bytes.count, alignment: h.alignment), end)
                    }
                    if !complete, bytes.count >= 8 {
                        let n = try SafetensorsHeader.headerLength(bytes, file: path)
                        if 8 + n > bytes.count { throw NeedMoreBytes(atLeast: 8 + n) }
                    }
                    let h = try SafetensorsHeader.parse(bytes, fileLength: complete ? bytes.count : nil, file: path)
                    let end = h.tensors.reduce(h.dataStart) { $0 + $1.byteCount }
                    return (Checkpoint(path: path, format: .safetensors, compressed: true, tensors: h.tensors, locations: [],
                                       files: [], metadata: h.metadata, fileBytes: mapped.bytes.count), end)
                }
            } catch let more as NeedMoreBytes where !complete {
                let next = max(limit * 4, more.atLeast)
                if next > limit * 4 || next > maxCompressedHeaderBytes {
                    // A jump (a count or length from the header): check the content has those bytes
                    // before holding them.
                    let have = try Zstd.decompressedLength(mapped.bytes, upTo: more.atLeast, path: path)
                    guard more.atLeast <= have else {
                        throw ScalpelError.malformed(file: path, tensor: nil, reason: "the header needs \(more.atLeast) bytes, past the end of the decompressed content (\(have) bytes)")
                    }
                }
                guard more.atLeast <= maxCompressedHeaderBytes else {
                    throw ScalpelError.malformed(file: path, tensor: nil, reason: "the header is larger than \(maxCompressedHeaderBytes >> 20) MiB; Scalpel reads compressed headers up to that size (decompress the file first)")
                }
                limit = min(next, maxCompressedHeaderBytes)
            }
        }
    }
}

/// Thrown by header parsers reading a prefix of a file: the header continues past the prefix.
struct NeedMoreBytes: Error {
    let atLeast: Int
}
