// `scalpel-kernel-bench kquant`: K-quant kernels in memory, the peer of scripts/ggml_quant_harness.c's
// `bench` (same generated matrix, same JSON fields), and a byte dump for the interop tests.
//
//   scalpel-kernel-bench kquant TYPE NROWS NPERROW THREADS REPEATS [IN.f32|-] [IMATRIX.f32] [--dump OUT.bin]
//
// THREADS 1 quantizes fixed slices of rows one after the other on the calling thread; any other value
// runs KQuant.quantize once over the whole matrix (its parallel chunks use every core). The bytes are the
// same either way.
import Foundation
import ScalpelKit

enum KQuantBench {
    static func run(_ args: [String]) {
        var rest = args
        var dump: String? = nil
        if let i = rest.firstIndex(of: "--dump"), i + 1 < rest.count {
            dump = rest[i + 1]
            rest.removeSubrange(i...(i + 1))
        }
        guard rest.count >= 5, let type = GGMLType(name: rest[0].uppercased()), (KQuant.supportedTypes + KQuant.iq4Types).contains(type),
              let rows = Int(rest[1]), let cols = Int(rest[2]), let threads = Int(rest[3]), let repeats = Int(rest[4]),
              rows > 0, cols > 0, repeats > 0 else {
            fail("usage: scalpel-kernel-bench kquant TYPE NROWS NPERROW THREADS REPEATS [IN.f32|-] [IMATRIX.f32] [--dump OUT.bin]")
        }
        let count = rows * cols
        var values = [Float](repeating: 0, count: count)
        if rest.count > 5 && rest[5] != "-" {
            values = readFloats(rest[5], count: count)
        } else {
            // xorshift64*, uniform in [-1, 1): the harness's generator.
            var s: UInt64 = 0x9E37_79B9_7F4A_7C15
            for i in 0..<count {
                s ^= s >> 12; s ^= s << 25; s ^= s >> 27
                let r = s &* 0x2545_F491_4F6C_DD1D
                values[i] = Float(Double(r >> 40) / Double(1 << 24) * 2.0 - 1.0)
            }
        }
        let imatrix: [Float]? = rest.count > 6 ? readFloats(rest[6], count: cols) : nil
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: count / type.blockSize * type.typeSize, alignment: 64)
        defer { out.deallocate() }
        var times: [Double] = []
        do {
            try values.withUnsafeBufferPointer { v in
                for _ in 0..<repeats {
                    let start = now()
                    if let imatrix {
                        try imatrix.withUnsafeBufferPointer { try quantize(type, v, cols, $0, out, threads) }
                    } else {
                        try quantize(type, v, cols, nil, out, threads)
                    }
                    times.append(now() - start)
                }
            }
        } catch {
            fail("kquant: \(error)")
        }
        if let dump { _ = FileManager.default.createFile(atPath: dump, contents: Data(out)) }
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in out { h ^= UInt64(b); h = h &* 0x100_0000_01b3 }
        times.sort()
        let median = times[times.count / 2]
        let hash = String(h, radix: 16)
        print("{\"type\": \"\(type.name)\", \"rows\": \(rows), \"n_per_row\": \(cols), \"threads\": \(threads), \"repeats\": \(repeats), "
              + "\"imatrix\": \(imatrix != nil), \"median_s\": \(String(format: "%.6f", median)), \"min_s\": \(String(format: "%.6f", times[0])), "
              + "\"gb_per_s_f32\": \(String(format: "%.3f", Double(count) * 4 / median / 1e9)), \"fnv1a\": \"\(String(repeating: "0", count: 16 - hash.count) + hash)\"}")
    }

    /// THREADS 1: slices of whole rows of at most 64 super-blocks (one chunk each), one after the other.
    private static func quantize(_ type: GGMLType, _ v: UnsafeBufferPointer<Float>, _ cols: Int, _ w: UnsafeBufferPointer<Float>?,
                                 _ out: UnsafeMutableRawBufferPointer, _ threads: Int) throws {
        guard threads == 1 else {
            return try KQuant.quantize(type, v, rowLength: cols, importance: w, into: out)
        }
        let rowsPerSlice = max(1, 64 * 256 / cols)
        let rows = v.count / cols, rowBytes = cols / type.blockSize * type.typeSize
        var r = 0
        while r < rows {
            let n = min(rowsPerSlice, rows - r)
            try KQuant.quantize(type, UnsafeBufferPointer(rebasing: v[(r * cols)..<((r + n) * cols)]), rowLength: cols, importance: w,
                                into: UnsafeMutableRawBufferPointer(rebasing: out[(r * rowBytes)..<((r + n) * rowBytes)]))
            r += n
        }
    }

    private static func readFloats(_ path: String, count: Int) -> [Float] {
        guard let data = FileManager.default.contents(atPath: path), data.count == 4 * count else {
            fail("\(path): expected \(4 * count) bytes of f32")
        }
        return data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
    }
}
