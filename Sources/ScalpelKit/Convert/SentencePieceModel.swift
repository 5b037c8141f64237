import Foundation

/// The parts of a SentencePiece `tokenizer.model` (a `ModelProto` protobuf) that llama.cpp's converter
/// reads: each piece's text, score and type, and the normalizer's flags. A small protobuf wire-format
/// reader; unknown fields are skipped, every length is checked against the bytes left.
struct SentencePieceModel {
    /// SentencePiece piece types (same numbers as llama.cpp's token types).
    enum PieceType: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    struct Piece {
        var text: String
        var score: Float
        var type: PieceType
    }

    var pieces: [Piece] = []
    /// trainer_spec.model_type (1 unigram, 2 bpe, 3 word, 4 char).
    var modelType = 1
    var addDummyPrefix = true
    var removeExtraWhitespaces = true

    init(path: String) throws {
        let file = try MappedFile(path: path)
        func bad(_ r: String) -> ScalpelError { .malformed(file: path, tensor: nil, reason: "tokenizer.model: " + r) }
        var r = Reader(bytes: file.bytes, fail: bad)
        while !r.atEnd {
            let (field, wire) = try r.key()
            switch (field, wire) {
            case (1, 2):
                var sub = try r.message()
                var piece = Piece(text: "", score: 0, type: .normal)
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    switch (f, w) {
                    case (1, 2):
                        let b = try sub.lengthDelimited()
                        guard let s = String(validating: b, as: UTF8.self) else { throw bad("piece \(pieces.count) is not UTF-8") }
                        piece.text = s
                    case (2, 5): piece.score = Float(bitPattern: try sub.fixed32())
                    case (3, 0):
                        let t = try sub.varint()
                        guard let pt = PieceType(rawValue: Int(t)) else { throw bad("piece \(pieces.count) has unknown type \(t)") }
                        piece.type = pt
                    default: try sub.skip(w)
                    }
                }
                pieces.append(piece)
            case (2, 2):
                var sub = try r.message()
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    if f == 3, w == 0 { modelType = Int(try sub.varint()) } else { try sub.skip(w) }
                }
            case (3, 2):
                var sub = try r.message()
                while !sub.atEnd {
                    let (f, w) = try sub.key()
                    if f == 3, w == 0 { addDummyPrefix = try sub.varint() != 0 }
                    else if f == 4, w == 0 { removeExtraWhitespaces = try sub.varint() != 0 }
                    else { try sub.skip(w) }
                }
            default:
                try r.skip(wire)
            }
        }
        guard !pieces.isEmpty else { throw bad("no pieces") }
    }

    /// Protobuf wire-format reading over a byte range.
    struct Reader {
        let bytes: UnsafeRawBufferPointer
        let fail: (String) -> ScalpelError
        var pos = 0
        var end: Int

        init(bytes: UnsafeRawBufferPointer, fail: @escaping (String) -> ScalpelError, pos: Int = 0, end: Int? = nil) {
            self.bytes = bytes; self.fail = fail; self.pos = pos; self.end = end ?? bytes.count
        }

        var atEnd: Bool { pos >= end }

        mutating func varint() throws -> UInt64 {
            var v: UInt64 = 0
            var shift: UInt64 = 0
            while true {
                guard pos < end else { throw fail("truncated varint") }
                let b = bytes[pos]; pos += 1
                guard shift < 64 else { throw fail("varint longer than 10 bytes") }
                v |= UInt64(b & 0x7F) << shift
                if b & 0x80 == 0 { return v }
                shift += 7
            }
        }

        mutating func key() throws -> (Int, Int) {
            let k = try varint()
            return (Int(k >> 3), Int(k & 7))
        }

        mutating func fixed32() throws -> UInt32 {
            guard end - pos >= 4 else { throw fail("truncated fixed32") }
            defer { pos += 4 }
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: pos, as: UInt32.self))
        }

        mutating func lengthDelimited() throws -> UnsafeRawBufferPointer {
            let n = try varint()
            guard n <= UInt64(end - pos) else { throw fail("length \(n) runs past the end") }
            defer { pos += Int(n) }
            return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + Int(n))])
        }

        mutating func message() throws -> Reader {
            let n = try varint()
            guard n <= UInt64(end - pos) else { throw fail("message length \(n) runs past the end") }
            let sub = Reader(bytes: bytes, fail: fail, pos: pos, end: pos + Int(n))
            pos += Int(n)
            return sub
        }

        mutating func skip(_ wire: Int) throws {
            switch wire {
            case 0: _ = try varint()
            case 1: guard end - pos >= 8 else { throw fail("truncated fixed64") }; pos += 8
            case 2: _ = try lengthDelimited()
            case 5: _ = try fixed32()
            default: throw fail("unsupported wire type \(wire)")
            }
        }
    }
}
