import CScalpelKernels
import Dispatch

/// Runs work over the blocks of a ggml-quantized buffer in fixed chunks, in parallel.
///
/// Chunk boundaries depend only on the block count, never on the number of threads, and every block is
/// computed independently, so results are the same on any machine.
enum GGMLBlockChunks {
    /// Blocks per parallel work item (8192 blocks of 32 floats = 1 MiB of f32).
    static let blocksPerChunk = 8192
    /// Blocks whose f16 scales are converted together (stack buffers of this many values).
    static let scaleBatch = 256

    /// Calls `body` for consecutive ranges of `0..<blocks`, concurrently when there is more than one chunk.
    static func forEach(blocks: Int, blocksPerChunk: Int = blocksPerChunk, _ body: (Range<Int>) -> Void) {
        let chunks = chunkCount(blocks: blocks, blocksPerChunk: blocksPerChunk)
        if chunks <= 1 {
            if blocks > 0 { body(0..<blocks) }
            return
        }
        Parallelism.forEach(chunks) { c in
            body(c * blocksPerChunk..<min(blocks, (c + 1) * blocksPerChunk))
        }
    }

    private static func chunkCount(blocks: Int, blocksPerChunk: Int) -> Int {
        blocks / blocksPerChunk + (blocks % blocksPerChunk == 0 ? 0 : 1)
    }

    /// Like `forEach`, and true when `body` returned true for every chunk.
    static func allSatisfy(blocks: Int, blocksPerChunk: Int = blocksPerChunk, _ body: (Range<Int>) -> Bool) -> Bool {
        let chunks = chunkCount(blocks: blocks, blocksPerChunk: blocksPerChunk)
        return withUnsafeTemporaryAllocation(of: Bool.self, capacity: max(chunks, 1)) { results in
            let out = UncheckedBox(results)
            forEach(blocks: blocks, blocksPerChunk: blocksPerChunk) { range in
                out.value[range.lowerBound / blocksPerChunk] = body(range)
            }
            return results[0..<chunks].allSatisfy { $0 }
        }
    }

    /// Calls `body` for consecutive sub-ranges of `range` of at most `scaleBatch` blocks.
    @inline(__always)
    static func batches(_ range: Range<Int>, _ body: (Range<Int>) -> Void) {
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(range.upperBound, start + scaleBatch)
            body(start..<end)
            start = end
        }
    }

    /// Reads the f16 field at `fieldOffset` of each block in `range` (blocks of `typeSize` bytes from
    /// `src`) and converts them to f32 into `out[0..<range.count]`.
    @inline(__always)
    static func loadHalves(_ src: UnsafeRawPointer, typeSize: Int, fieldOffset: Int, _ range: Range<Int>,
                           halves: UnsafeMutablePointer<UInt16>, into out: UnsafeMutablePointer<Float>) {
        for (k, b) in range.enumerated() {
            halves[k] = UInt16(littleEndian: src.loadUnaligned(fromByteOffset: b * typeSize + fieldOffset, as: UInt16.self))
        }
        scalpel_f16_to_f32(halves, out, range.count)
    }

    /// Converts `values[0..<range.count]` to f16 (round to nearest even) and stores each into the field at
    /// `fieldOffset` of the blocks in `range`.
    @inline(__always)
    static func storeHalves(_ values: UnsafePointer<Float>, halves: UnsafeMutablePointer<UInt16>,
                            into dst: UnsafeMutableRawPointer, typeSize: Int, fieldOffset: Int, _ range: Range<Int>) {
        scalpel_f32_to_f16(values, halves, range.count)
        for (k, b) in range.enumerated() {
            dst.storeBytes(of: halves[k].littleEndian, toByteOffset: b * typeSize + fieldOffset, as: UInt16.self)
        }
    }
}
