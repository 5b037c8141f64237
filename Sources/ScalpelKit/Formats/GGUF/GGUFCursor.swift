/// A bounds-checked little-endian reader over the bytes of a GGUF header.
///
/// Every read checks that its bytes are present. When they are not, a complete file is malformed
/// (truncated), while a prefix (`isPrefix`) asks for more bytes with `NeedMoreBytes`.
struct GGUFCursor {
    let bytes: UnsafeRawBufferPointer
    /// True when `bytes` is only the beginning of the file.
    let isPrefix: Bool
    /// The file name for error messages.
    let file: String
    /// The next byte to read.
    private(set) var offset = 0

    init(_ bytes: UnsafeRawBufferPointer, isPrefix: Bool, file: String) {
        self.bytes = bytes
        self.isPrefix = isPrefix
        self.file = file
    }

    /// Bytes left after `offset`.
    var remaining: Int { bytes.count - offset }

    /// Checks that `count` more bytes are available for `what` (named in the error).
    func need(_ count: Int, for what: @autoclosure () -> String, tensor: String? = nil) throws {
        if count <= remaining { return }
        let (end, overflow) = offset.addingReportingOverflow(count)
        if isPrefix && !overflow { throw NeedMoreBytes(atLeast: end) }
        throw ScalpelError.malformed(file: file, tensor: tensor,
                                     reason: "\(what()) needs \(count) bytes at offset \(offset), past the end of the file (\(bytes.count) bytes)")
    }

    /// Checks that `count` items of at least `minimumSize` bytes each can fit in the remaining bytes,
    /// and returns the count as an Int. Call before allocating anything sized by an untrusted count.
    func needCount(_ count: UInt64, minimumSize: Int, for what: @autoclosure () -> String, tensor: String? = nil) throws -> Int {
        guard count <= UInt64(Int.max) else {
            throw ScalpelError.malformed(file: file, tensor: tensor, reason: "\(what()) count \(count) is impossibly large")
        }
        let (total, overflow) = Int(count).multipliedReportingOverflow(by: minimumSize)
        guard !overflow else {
            throw ScalpelError.malformed(file: file, tensor: tensor, reason: "\(what()) count \(count) is impossibly large")
        }
        if total > remaining {
            if isPrefix, offset <= Int.max - total { throw NeedMoreBytes(atLeast: offset + total) }
            throw ScalpelError.malformed(file: file, tensor: tensor,
                                         reason: "\(what()) count \(count) needs at least \(total) bytes at offset \(offset), past the end of the file (\(bytes.count) bytes)")
        }
        return Int(count)
    }

    /// Moves to `newOffset` (at most the end of the bytes, which must have been checked by the caller).
    mutating func seek(to newOffset: Int) {
        offset = newOffset
    }

    mutating func read<T: FixedWidthInteger>(_: T.Type, for what: @autoclosure () -> String, tensor: String? = nil) throws -> T {
        try need(MemoryLayout<T>.size, for: what(), tensor: tensor)
        let v = T(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: T.self))
        offset += MemoryLayout<T>.size
        return v
    }

    mutating func u8(_ what: @autoclosure () -> String, tensor: String? = nil) throws -> UInt8 { try read(UInt8.self, for: what(), tensor: tensor) }
    mutating func u16(_ what: @autoclosure () -> String, tensor: String? = nil) throws -> UInt16 { try read(UInt16.self, for: what(), tensor: tensor) }
    mutating func u32(_ what: @autoclosure () -> String, tensor: String? = nil) throws -> UInt32 { try read(UInt32.self, for: what(), tensor: tensor) }
    mutating func u64(_ what: @autoclosure () -> String, tensor: String? = nil) throws -> UInt64 { try read(UInt64.self, for: what(), tensor: tensor) }

    /// Reads a GGUF string: u64 byte length, then that many bytes of UTF-8 (invalid UTF-8 is an error).
    mutating func string(_ what: @autoclosure () -> String, tensor: String? = nil) throws -> String {
        let length = try u64("the length of \(what())", tensor: tensor)
        let n = try needCount(length, minimumSize: 1, for: "\(what()) byte", tensor: tensor)
        let raw = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + n)])
        guard let s = String(validating: raw, as: UTF8.self) else {
            throw ScalpelError.malformed(file: file, tensor: tensor, reason: "\(what()) at offset \(offset) is not valid UTF-8")
        }
        offset += n
        return s
    }
}
