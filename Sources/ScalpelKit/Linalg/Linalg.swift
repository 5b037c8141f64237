import CBLAS
import Foundation

/// The BLAS/LAPACK wrappers (OpenBLAS, LAPACKE) on row-major `Float` matrices.
///
/// Threading policy: OpenBLAS is switched to ONE thread the first time any wrapper runs (a process-wide
/// setting), and the large matrix products are parallelized here instead, over fixed blocks of the
/// output (see `multiply`). Every result is therefore bit-identical whatever the thread count. All BLAS
/// and LAPACK calls in ScalpelKit must go through `Linalg` so that no other code turns OpenBLAS threads
/// back on.
public enum Linalg {
    /// The number of threads used by default for matrix products: `Parallelism.threads`.
    public static var defaultThreadCount: Int { Parallelism.threads }

    /// Converts a dimension or leading dimension to the 32-bit integer that BLAS and LAPACK take.
    /// Throws `ScalpelError.invalid` naming `what` when `value` is negative or above `Int32.max`.
    public static func lapackInt(_ value: Int, _ what: String) throws -> Int32 {
        guard let v = Int32(exactly: value), v >= 0 else {
            throw ScalpelError.invalid(
                file: nil, tensor: nil,
                reason: "\(what) \(value) is outside the 32-bit range of BLAS/LAPACK (0...\(Int32.max))")
        }
        return v
    }

    /// Runs once, before the first BLAS/LAPACK call: OpenBLAS single-threaded (see the type's comment).
    static let singleThreadedBLAS: Void = {
        openblas_set_num_threads(1)
    }()
}
