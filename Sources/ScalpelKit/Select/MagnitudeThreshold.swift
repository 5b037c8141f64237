/// Which elements an exact magnitude selection removes: every element whose key is below `key`, and
/// the first `ties` elements (in order) whose key equals `key`.
///
/// Removing the `k` smallest magnitudes with ties broken by position (the lower index goes first)
/// always has this shape; it is the set `np.argsort(np.abs(w), kind="stable")[:k]` names.
public struct MagnitudeThreshold: Sendable, Equatable {
    /// Keys below this are removed (see `MagnitudeKey`).
    public var key: UInt32
    /// How many elements with key equal to `key` are removed, first ones first; `Int.max` for all.
    public var ties: Int

    public init(key: UInt32, ties: Int) {
        self.key = key
        self.ties = ties
    }

    /// Removes nothing.
    public static let nothing = MagnitudeThreshold(key: 0, ties: 0)

    /// The threshold that removes exactly the `k` smallest magnitudes of `source` (ties by position).
    ///
    /// Two parallel histogram passes (`KeyHistogram`), no sort and no copy of the data.
    /// - Precondition: `0 <= k <= source.count`.
    public static func smallest(_ k: Int, of source: MagnitudeSource) -> MagnitudeThreshold {
        precondition(k >= 0 && k <= source.count, "cannot select \(k) of \(source.count) elements")
        guard k > 0 else { return .nothing }
        var high = [Int](repeating: 0, count: KeyHistogram.buckets)
        KeyHistogram.addHigh(source, into: &high)
        let (bucket, belowHigh) = KeyHistogram.locate(high, rank: k - 1)
        var low = [Int](repeating: 0, count: KeyHistogram.buckets)
        KeyHistogram.addLow(source, high: bucket, into: &low)
        let (digit, belowLow) = KeyHistogram.locate(low, rank: k - 1 - belowHigh)
        return MagnitudeThreshold(key: UInt32(bucket << 16 | digit), ties: k - belowHigh - belowLow)
    }
}
