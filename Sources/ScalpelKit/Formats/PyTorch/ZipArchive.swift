import Foundation

/// The central directory of a zip archive as `torch.save` writes it: every entry stored (method 0,
/// uncompressed), so each entry's bytes are a plain range of the mapped archive.
///
/// Only what torch archives need is read: the end-of-central-directory record (zip64 too), each
/// central-directory entry's name, sizes and local-header offset, and the local header's name and extra
/// lengths to find where the data starts. Every count and offset is checked against the archive's size
/// before it is used; an entry that is compressed or encrypted is refused.
struct ZipArchive {
    /// One stored entry.
    struct Entry {
        var name: String
        /// Absolute offset of the entry's first data byte in the archive.
        var dataStart: Int
        var size: Int
    }

    /// Entries by name, in central-directory order.
    let entries: [Entry]
    private let byName: [String: Int]

    /// The zip local-file-header magic `PK\x03\x04`.
    static func hasMagic(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x50 && bytes[1] == 0x4B && bytes[2] == 0x03 && bytes[3] == 0x04
    }

    func entry(_ name: String) -> Entry? { byName[name].map { entries[$0] } }

    /// Parses the archive's directory.
    /// - Throws: `ScalpelError.malformed` naming `file` for anything inconsistent.
    init(_ bytes: UnsafeRawBufferPointer, file: String) throws {
        func fail(_ reason: String) -> ScalpelError { .malformed(file: file, tensor: nil, reason: "zip: " + reason) }
        func u16(_ at: Int) -> Int { Int(UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self))) }
        func u32(_ at: Int) -> Int { Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self))) }
        func u64(_ at: Int) throws -> Int {
            let v = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            guard let i = Int(exactly: v), i <= bytes.count else { throw fail("64-bit field \(v) exceeds the archive size") }
            return i
        }
        let n = bytes.count
        guard n >= 22 else { throw fail("archive of \(n) bytes is too short for an end-of-central-directory record") }
        // The EOCD record is in the last 22 + 65535 bytes (its comment is at most 65535 bytes).
        var eocd = -1
        var p = n - 22
        let lowest = max(0, n - 22 - 65535)
        while p >= lowest {
            if u32(p) == 0x0605_4B50 && p + 22 + u16(p + 20) == n { eocd = p; break }
            p -= 1
        }
        guard eocd >= 0 else { throw fail("no end-of-central-directory record") }
        var count = u16(eocd + 10)
        var cdSize = u32(eocd + 12)
        var cdOffset = u32(eocd + 16)
        if count == 0xFFFF || cdSize == 0xFFFF_FFFF || cdOffset == 0xFFFF_FFFF {
            // zip64: a locator just before the EOCD points at the zip64 EOCD record.
            let loc = eocd - 20
            guard loc >= 0, u32(loc) == 0x0706_4B50 else { throw fail("zip64 fields without a zip64 locator") }
            let rec = try u64(loc + 8)
            guard rec + 56 <= n, u32(rec) == 0x0606_4B50 else { throw fail("zip64 end-of-central-directory record out of place") }
            count = try u64(rec + 32)
            cdSize = try u64(rec + 40)
            cdOffset = try u64(rec + 48)
        }
        guard cdOffset <= n, cdSize <= n - cdOffset else {
            throw fail("central directory at \(cdOffset) of \(cdSize) bytes runs past the archive end (\(n) bytes)")
        }
        // Each central entry takes at least 46 bytes: bound the count before allocating.
        guard count <= cdSize / 46 else { throw fail("\(count) entries cannot fit a \(cdSize)-byte central directory") }
        var entries: [Entry] = []
        entries.reserveCapacity(count)
        var byName: [String: Int] = [:]
        var q = cdOffset
        let cdEnd = cdOffset + cdSize
        for _ in 0..<count {
            guard q + 46 <= cdEnd, u32(q) == 0x0201_4B50 else { throw fail("bad central directory entry at offset \(q)") }
            let flags = u16(q + 8)
            let method = u16(q + 10)
            var csize = u32(q + 20)
            var usize = u32(q + 24)
            let nameLen = u16(q + 28), extraLen = u16(q + 30), commentLen = u16(q + 32)
            var local = u32(q + 42)
            guard q + 46 + nameLen + extraLen + commentLen <= cdEnd else { throw fail("central directory entry at offset \(q) runs past the directory") }
            let name = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(q + 46)..<(q + 46 + nameLen)]), as: UTF8.self)
            // zip64 extra field (id 1): the 0xFFFFFFFF fields, in order usize, csize, local offset.
            var e = q + 46 + nameLen
            let eEnd = e + extraLen
            while e + 4 <= eEnd {
                let id = u16(e), len = u16(e + 2)
                guard e + 4 + len <= eEnd else { throw fail("\(name): extra field runs past its entry") }
                if id == 1 {
                    var f = e + 4
                    if usize == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("\(name): short zip64 field") }; usize = try u64(f); f += 8 }
                    if csize == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("\(name): short zip64 field") }; csize = try u64(f); f += 8 }
                    if local == 0xFFFF_FFFF { guard f + 8 <= e + 4 + len else { throw fail("\(name): short zip64 field") }; local = try u64(f); f += 8 }
                }
                e += 4 + len
            }
            guard flags & 1 == 0 else { throw fail("\(name): entry is encrypted") }
            guard method == 0 else { throw fail("\(name): entry is compressed (method \(method)); torch archives store entries uncompressed") }
            guard csize == usize else { throw fail("\(name): stored entry has compressed size \(csize) != size \(usize)") }
            guard local <= n - 30, u32(local) == 0x0403_4B50 else { throw fail("\(name): no local header at offset \(local)") }
            let dataStart = local + 30 + u16(local + 26) + u16(local + 28)
            guard dataStart <= n, usize <= n - dataStart else {
                throw fail("\(name): \(usize) bytes at offset \(dataStart) run past the archive end (\(n) bytes)")
            }
            guard byName[name] == nil else { throw fail("\(name): duplicate entry") }
            byName[name] = entries.count
            entries.append(Entry(name: name, dataStart: dataStart, size: usize))
            q += 46 + nameLen + extraLen + commentLen
        }
        self.entries = entries
        self.byName = byName
    }
}
