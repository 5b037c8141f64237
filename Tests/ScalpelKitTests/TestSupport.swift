import Foundation
@testable import ScalpelKit

/// A fresh temporary folder for one test, removed by the caller with `cleanup()`.
struct TempDir {
    let path: String

    init() {
        path = NSTemporaryDirectory() + "scalpel-test-" + UUID().uuidString
        try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func cleanup() { try? FileManager.default.removeItem(atPath: path) }

    /// Names of the entries in the folder.
    func entries() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

/// A safetensors file's bytes built by hand: `header` JSON text then `data`.
func safetensorsBytes(header: String, data: [UInt8] = [], declaredLength: UInt64? = nil) -> [UInt8] {
    let h = Array(header.utf8)
    var out = [UInt8]()
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) { out.append(contentsOf: $0) }
    return out + h + data
}

/// An output tensor of f32 values.
func f32Tensor(_ name: String, _ shape: [Int], _ values: [Float]) -> OutputTensor {
    OutputTensor(name: name, type: .plain(.f32), shape: shape, content: .compute { buf in
        values.withUnsafeBytes { buf.copyMemory(from: $0) }
    })
}

/// Writes bytes to a file.
func writeBytes(_ bytes: [UInt8], to path: String) {
    _ = FileManager.default.createFile(atPath: path, contents: Data(bytes))
}

/// A seeded SplitMix64 generator, so every test sees the same data.
struct TestRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
