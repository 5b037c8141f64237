/// What pruning did to one tensor (or to several, added up).
public struct PruneCounts: Sendable, Equatable {
    /// Elements considered.
    public var elements = 0
    /// Elements in the pruning mask: set to zero, including those that already were zero.
    public var zeroed = 0
    /// Zero elements in the output: the zeroed ones plus zeros that were kept (when a tensor already
    /// held more zeros than the target count).
    public var zerosAfter = 0
    /// Sum of squares of the finite input values.
    public var sumSquares = 0.0
    /// Sum of squares of the finite values that were zeroed.
    public var removedSumSquares = 0.0

    public init(elements: Int = 0, zeroed: Int = 0, zerosAfter: Int = 0, sumSquares: Double = 0, removedSumSquares: Double = 0) {
        self.elements = elements
        self.zeroed = zeroed
        self.zerosAfter = zerosAfter
        self.sumSquares = sumSquares
        self.removedSumSquares = removedSumSquares
    }

    /// Fraction of the output's elements that are zero (0 for an empty tensor).
    public var achievedSparsity: Double { elements > 0 ? Double(zerosAfter) / Double(elements) : 0 }

    /// `||w - w'|| / ||w||` over the finite values: the fraction of the L2 norm that pruning removed
    /// (the square root of the removed share of the sum of squares); 0 when the norm is 0.
    public var normRemovedFraction: Double {
        sumSquares > 0 ? (removedSumSquares / sumSquares).squareRoot() : 0
    }

    /// Adds another tensor's (or part's) counts.
    public mutating func add(_ o: PruneCounts) {
        elements += o.elements
        zeroed += o.zeroed
        zerosAfter += o.zerosAfter
        sumSquares += o.sumSquares
        removedSumSquares += o.removedSumSquares
    }
}
