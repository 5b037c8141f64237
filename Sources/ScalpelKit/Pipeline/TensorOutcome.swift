/// What computing one output tensor measured. The writer collects one per computed tensor into its
/// `WriteResult`, and each command assembles its report from them after writing: no report object is
/// shared between threads or filled in behind the caller's back.
public struct TensorOutcome: Sendable, Equatable {
    /// The error between the values the tensor stands for and what was written (quantization,
    /// re-quantization after a merge or a prune, a float cast).
    public var error: QuantError?
    /// What pruning did to the tensor.
    public var pruned: PruneCounts?
    /// The energy an SVD truncation kept and lost, for the first factor of a truncated update.
    public var truncation: Truncation?

    /// `||D||_F^2` of an update and `||D - B'A'||_F^2` of its truncation to `rank`.
    public struct Truncation: Sendable, Equatable {
        public var rank: Int
        public var energy: Double
        public var lostEnergy: Double

        public init(rank: Int, energy: Double, lostEnergy: Double) {
            self.rank = rank
            self.energy = energy
            self.lostEnergy = lostEnergy
        }

        /// `||D - B'A'||_F / ||D||_F` (0 for D = 0).
        public var relativeError: Double { energy > 0 ? (lostEnergy / energy).squareRoot() : 0 }
    }

    public init(error: QuantError? = nil, pruned: PruneCounts? = nil, truncation: Truncation? = nil) {
        self.error = error
        self.pruned = pruned
        self.truncation = truncation
    }

    /// Nothing measured.
    public static let none = TensorOutcome()
}
