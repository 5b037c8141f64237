import Foundation
import Synchronization

/// Counts of magnitude keys by their high and low 16 bits: the two passes of an exact radix selection
/// over data too large to copy.
///
/// The first pass counts `key >> 16` over everything; the bucket holding the wanted rank is then
/// resolved by a second pass that counts `key & 0xFFFF` of the keys in that bucket only. Two reads of
/// the data, two 65,536-entry tables, any number of tensors: this is how the global threshold is found
/// without holding the weights in memory. Counting is parallel over fixed slices; integer sums do not
/// depend on the order they are merged in.
public enum KeyHistogram {
    /// Entries in each table.
    public static let buckets = 1 << 16
    /// Elements per parallel work item.
    static let slice = 1 << 21

    /// Adds to `counts` (65,536 entries) the number of keys of `source` with each high half.
    public static func addHigh(_ source: MagnitudeSource, into counts: inout [Int]) {
        precondition(counts.count == buckets)
        accumulate(source, into: &counts) { r, bits, table in
            for i in 0..<r.count {
                table[Int(MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) >> 16)] &+= 1
            }
        }
    }

    /// Adds to `counts` (65,536 entries) the number of keys of `source` with each low half, among the
    /// keys whose high half is `high`. Returns how many keys had that high half.
    @discardableResult
    public static func addLow(_ source: MagnitudeSource, high: Int, into counts: inout [Int]) -> Int {
        precondition(counts.count == buckets)
        let before = counts.reduce(0, +)
        let h = SIMD16<UInt32>(repeating: UInt32(high))
        accumulate(source, into: &counts) { r, bits, table in
            let full = r.count & ~15
            var i = 0
            while i < full {
                let k = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self))
                if (MagnitudeKey.equal(k &>> 16, h)).wrappedSum() != 0 {
                    for lane in 0..<16 where k[lane] >> 16 == UInt32(high) { table[Int(k[lane] & 0xFFFF)] &+= 1 }
                }
                i += 16
            }
            while i < r.count {
                let k = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))
                if k >> 16 == UInt32(high) { table[Int(k & 0xFFFF)] &+= 1 }
                i += 1
            }
        }
        return counts.reduce(0, +) - before
    }

    /// The number of keys of `source` equal to `key`.
    public static func countEqual(_ source: MagnitudeSource, key: UInt32) -> Int {
        let slices = (source.count + slice - 1) / slice
        var parts = [Int](repeating: 0, count: slices)
        parts.withUnsafeMutableBufferPointer { p in
            let out = UncheckedBox(p)
            parallelChunks(count: source.count, chunk: slice) { r in
                var n = 0
                let t = SIMD16<UInt32>(repeating: key)
                source.forEachBlock(in: r) { b, bits in
                    let full = b.count & ~15
                    var acc = SIMD16<UInt32>()
                    var i = 0
                    while i < full {
                        let k = MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: SIMD16<UInt32>.self))
                        acc &+= MagnitudeKey.equal(k, t)
                        i += 16
                    }
                    n += Int(acc.wrappedSum())
                    while i < b.count {
                        if MagnitudeKey.of(bits: bits.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)) == key { n += 1 }
                        i += 1
                    }
                }
                out.value[r.lowerBound / slice] = n
            }
        }
        return parts.reduce(0, +)
    }

    /// The bucket that holds the element of 0-based rank `rank` when `counts` is read in order, and the
    /// number of elements in the buckets before it.
    /// - Precondition: `0 <= rank < counts.reduce(0, +)`.
    public static func locate(_ counts: [Int], rank: Int) -> (bucket: Int, below: Int) {
        var below = 0
        for (b, c) in counts.enumerated() {
            if rank < below + c { return (b, below) }
            below += c
        }
        preconditionFailure("rank \(rank) is not below the total count \(below)")
    }

    /// Runs `count` over fixed slices of `source` in parallel, each into its own 65,536-entry table of
    /// 32-bit counters (a slice holds fewer than 2^32 elements), then adds the tables into `counts`.
    private static func accumulate(_ source: MagnitudeSource, into counts: inout [Int],
                                   _ count: (Range<Int>, UnsafeRawPointer, UnsafeMutablePointer<UInt32>) -> Void) {
        let total = Mutex(counts)
        withoutActuallyEscaping(count) { count in
            let body = UncheckedBox(count)
            parallelChunks(count: source.count, chunk: slice) { r in
                let table = UnsafeMutablePointer<UInt32>.allocate(capacity: buckets)
                defer { table.deallocate() }
                table.initialize(repeating: 0, count: buckets)
                source.forEachBlock(in: r) { b, bits in body.value(b, bits, table) }
                total.withLock { sum in
                    for i in 0..<buckets where table[i] != 0 { sum[i] += Int(table[i]) }
                }
            }
        }
        counts = total.withLock { $0 }
    }
}
