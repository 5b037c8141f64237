/// Exact selection of the k-th smallest of a small array of unsigned keys, in linear time.
///
/// A most-significant-digit radix selection with 8-bit digits: each pass counts the current digit of
/// the remaining candidates, keeps only those in the digit bucket that holds the wanted rank, and moves
/// on to the next digit. At most `K.bitWidth / 8` passes, each over fewer candidates than the one
/// before; no comparisons, so no bad inputs (all-equal keys, sorted keys) and no recursion.
public enum RadixSelect {
    /// The key of 0-based rank `rank` among `keys` (the `rank + 1`-th smallest), and how many keys are
    /// strictly smaller than it.
    ///
    /// `keys` is used as scratch: its order is destroyed.
    /// - Precondition: `0 <= rank < keys.count`.
    public static func kth<K: FixedWidthInteger & UnsignedInteger>(_ keys: UnsafeMutableBufferPointer<K>, rank: Int) -> (key: K, below: Int) {
        precondition(rank >= 0 && rank < keys.count, "rank \(rank) out of 0..<\(keys.count)")
        var remaining = keys.count
        var rank = rank
        var below = 0
        var shift = K.bitWidth - 8
        return withUnsafeTemporaryAllocation(of: Int.self, capacity: 256) { counts in
            while true {
                if remaining == 1 { return (keys[0], below) }
                counts.initialize(repeating: 0)
                for i in 0..<remaining { counts[Int(truncatingIfNeeded: keys[i] >> shift) & 255] += 1 }
                var digit = 0
                var before = 0
                while before + counts[digit] <= rank { before += counts[digit]; digit += 1 }
                below += before
                rank -= before
                if shift == 0 { return (keys[0] & ~K(255) | K(digit), below) }
                if counts[digit] != remaining {
                    var j = 0
                    for i in 0..<remaining where Int(truncatingIfNeeded: keys[i] >> shift) & 255 == digit {
                        keys[j] = keys[i]
                        j += 1
                    }
                    remaining = j
                }
                shift -= 8
            }
        }
    }
}
