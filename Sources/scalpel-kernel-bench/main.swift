// scalpel-kernel-bench: times Scalpel's quantizer kernels on tensors already in memory, the way
// scripts/bench/quantize_reference.py times gguf-py and bitsandbytes: every F32 tensor of a safetensors
// file is copied into memory once (not timed), then each library call is timed on its own and the
// times are summed over the tensors, for RUNS runs. Prints one JSON object like the Python peers:
// {"median", "min", "max", "runs", "bytes", "threads"}.
//
//   scalpel-kernel-bench IN.safetensors KERNEL RUNS
//
// KERNEL: q8_0 | q4_0 | q4_1 | q5_0 | q5_1 (GGMLQuantize.quantize), the same with "+error"
// (GGMLQuantize.quantizeMeasuring, what `scalpel quantize` runs), or nf4 | fp4 (FourBit.quantize,
// block 64). Outputs are allocated inside the timed call, as the peers' calls allocate theirs.
// `scalpel-kernel-bench kquant ...`: the K-quant kernels (KQuantBench.swift).
import Foundation
import ScalpelKit

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("scalpel-kernel-bench: \(message)\n".utf8))
    exit(2)
}

let args = CommandLine.arguments
if args.count > 1 && args[1] == "kquant" {
    KQuantBench.run(Array(args.dropFirst(2)))
    exit(0)
}
guard args.count == 4, let runs = Int(args[3]), runs > 0 else {
    fail("usage: scalpel-kernel-bench IN.safetensors KERNEL RUNS")
}
let kernelName = args[2]

/// One timed call on one tensor's values.
let call: (UnsafeBufferPointer<Float>) throws -> Void
switch kernelName {
case "nf4", "fp4":
    let kind: FourBitKind = kernelName == "nf4" ? .nf4 : .fp4
    call = { _ = try FourBit.quantize($0, kind: kind, blockSize: 64) }
default:
    let measuring = kernelName.hasSuffix("+error")
    let typeName = measuring ? String(kernelName.dropLast("+error".count)) : kernelName
    guard let type = GGMLType(name: typeName.uppercased()), GGMLQuantize.supportedTypes.contains(type) else {
        fail("unknown kernel \(kernelName)")
    }
    call = { values in
        let out = UnsafeMutableRawBufferPointer.allocate(byteCount: values.count / type.blockSize * type.typeSize, alignment: 64)
        defer { out.deallocate() }
        if measuring { _ = try GGMLQuantize.quantizeMeasuring(type, values, into: out) } else { try GGMLQuantize.quantize(type, values, into: out) }
    }
}

let tensors: [[Float]]
do {
    let checkpoint = try CheckpointReader.open(args[1])
    tensors = try checkpoint.tensors.indices.compactMap { i in
        guard checkpoint.tensors[i].type == .plain(.f32) else { return nil }
        return Array(try checkpoint.view(at: i).bytes.bindMemory(to: Float.self))
    }
} catch {
    fail("\(args[1]): \(error)")
}

func now() -> Double {
    var t = timespec()
    clock_gettime(CLOCK_MONOTONIC, &t)
    return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
}

var sums: [Double] = []
do {
    for _ in 0..<runs {
        var total = 0.0
        for t in tensors {
            try t.withUnsafeBufferPointer { values in
                let start = now()
                try call(values)
                total += now() - start
            }
        }
        sums.append(total)
    }
} catch {
    fail("\(kernelName): \(error)")
}
let sorted = sums.sorted()
let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
let bytes = tensors.reduce(0) { $0 + 4 * $1.count }
print("{\"median\": \(median), \"min\": \(sorted.first!), \"max\": \(sorted.last!), \"runs\": [\(sums.map { "\($0)" }.joined(separator: ", "))], \"bytes\": \(bytes), \"threads\": \(ProcessInfo.processInfo.activeProcessorCount)}")
