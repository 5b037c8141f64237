import Foundation

/// Reads the pickle stream of a `torch.save` archive (`data.pkl`) without executing anything.
///
/// Python's unpickler calls whatever global a stream names; this reader instead interprets a fixed set
/// of opcodes into `PickleValue`s and accepts only the globals that `torch.save` emits for tensors and
/// plain containers, the same set `torch.load(weights_only=True)` allows for them:
/// `collections.OrderedDict`, `builtins.dict/set/frozenset/list/tuple`, `torch.Size`,
/// `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_tensor_v3`, `torch._utils._rebuild_parameter`,
/// `_codecs.encode`, `torch.device`, the typed storage classes (`torch.FloatStorage`...,
/// `torch.UntypedStorage`) and dtypes (`torch.float32`...). Any other global, and the opcodes that build
/// arbitrary objects (INST, OBJ, NEWOBJ, NEWOBJ_EX, EXT*) or take out-of-band buffers, are refused with an
/// error that names them. Every length is checked against the bytes left before anything is allocated.
struct RestrictedUnpickler {
    /// Where errors point.
    let file: String
    private let bytes: UnsafeRawBufferPointer
    private var pos = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    /// Maximum nesting of tuples/lists/dicts built by the stream.
    static let maxDepth = 200

    init(_ bytes: UnsafeRawBufferPointer, file: String) {
        self.bytes = bytes
        self.file = file
    }

    /// Storage classes `torch.save` names in persistent ids, and the dtype of their elements.
    static let storageTypes: [String: DType] = [
        "DoubleStorage": .f64, "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
        "LongStorage": .i64, "IntStorage": .i32, "ShortStorage": .i16, "CharStorage": .i8,
        "ByteStorage": .u8, "BoolStorage": .bool, "ComplexFloatStorage": .c64, "UntypedStorage": .u8,
    ]

    /// `torch.<dtype>` globals (used by `_rebuild_tensor_v3`) and their dtypes.
    static let dtypeNames: [String: DType] = [
        "float64": .f64, "double": .f64, "float32": .f32, "float": .f32, "float16": .f16, "half": .f16,
        "bfloat16": .bf16, "int64": .i64, "long": .i64, "int32": .i32, "int": .i32, "int16": .i16, "short": .i16,
        "int8": .i8, "uint8": .u8, "uint16": .u16, "uint32": .u32, "uint64": .u64, "bool": .bool,
        "complex64": .c64, "float8_e4m3fn": .f8e4m3, "float8_e5m2": .f8e5m2, "float8_e4m3fnuz": .f8e4m3fnuz,
        "float8_e5m2fnuz": .f8e5m2fnuz, "float8_e8m0fnu": .f8e8m0,
    ]

    static let allowedCallables: Set<String> = [
        "collections.OrderedDict", "builtins.dict", "builtins.set", "builtins.frozenset", "builtins.list",
        "builtins.tuple", "torch.Size", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3",
        "torch._utils._rebuild_parameter", "_codecs.encode", "torch.device",
    ]

    private func fail(_ reason: String) -> ScalpelError {
        .malformed(file: file, tensor: nil, reason: "pickle: \(reason) (at byte \(pos))")
    }

    /// Checks a global against the allow-list.
    private func global(_ rawModule: String, _ name: String) throws -> PickleValue {
        // Protocol < 3 streams name Python 2 modules; map them as Python's unpickler does.
        let module = rawModule == "__builtin__" ? "builtins" : rawModule == "copy_reg" ? "copyreg" : rawModule
        let full = module + "." + name
        if Self.allowedCallables.contains(full) { return .global(full) }
        if module == "torch", Self.storageTypes[name] != nil || Self.dtypeNames[name] != nil { return .global(full) }
        if module == "torch.storage", name == "UntypedStorage" { return .global("torch.UntypedStorage") }
        throw ScalpelError.malformed(file: file, tensor: nil, reason:
            "pickle: refused global \(full): only the globals torch.save uses for tensors and plain containers are allowed (nothing was executed)")
    }

    // MARK: reading primitives

    private mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - pos else { throw fail("length \(n) runs past the end of the stream (\(bytes.count - pos) bytes left)") }
        defer { pos += n }
        return UnsafeRawBufferPointer(rebasing: bytes[pos..<(pos + n)])
    }

    private mutating func u8() throws -> Int { Int(try take(1)[0]) }
    private mutating func u16() throws -> Int { Int(UInt16(littleEndian: try take(2).loadUnaligned(as: UInt16.self))) }
    private mutating func u32() throws -> Int { Int(UInt32(littleEndian: try take(4).loadUnaligned(as: UInt32.self))) }
    private mutating func u64() throws -> Int {
        let v = UInt64(littleEndian: try take(8).loadUnaligned(as: UInt64.self))
        guard let i = Int(exactly: v) else { throw fail("length \(v) is too large") }
        return i
    }

    private mutating func utf8(_ n: Int) throws -> String {
        let b = try take(n)
        guard let s = String(validating: b, as: UTF8.self) else { throw fail("string is not valid UTF-8") }
        return s
    }

    /// A text line (for GLOBAL), at most 1024 bytes.
    private mutating func line() throws -> String {
        var end = pos
        while end < bytes.count, bytes[end] != 0x0A {
            end += 1
            if end - pos > 1024 { throw fail("GLOBAL name longer than 1024 bytes") }
        }
        guard end < bytes.count else { throw fail("GLOBAL name without a newline") }
        let s = try utf8(end - pos)
        pos += 1
        return s
    }

    // MARK: stack

    private mutating func pop() throws -> PickleValue {
        guard let v = stack.popLast() else { throw fail("stack underflow") }
        if case .mark = v { throw fail("unexpected MARK") }
        return v
    }

    private mutating func popToMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail("no MARK") }
        let items = Array(stack[(m + 1)...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func top() throws -> PickleValue {
        guard let v = stack.last else { throw fail("stack underflow") }
        return v
    }

    private mutating func push(_ v: PickleValue) throws {
        if Self.depth(v, limit: Self.maxDepth) > Self.maxDepth { throw fail("containers nested deeper than \(Self.maxDepth)") }
        stack.append(v)
    }

    /// Nesting depth of tuples (lists and dicts count their current items; cheap: they are shallow when built).
    static func depth(_ v: PickleValue, limit: Int) -> Int {
        switch v {
        case .tuple(let t): return 1 + (t.map { depth($0, limit: limit) }.max() ?? 0)
        case .list(let l): return 1 + (l.items.prefix(64).map { depth($0, limit: limit) }.max() ?? 0)
        default: return 0
        }
    }

    // MARK: the interpreter

    /// Runs the stream to STOP and returns the value it leaves.
    mutating func load() throws -> PickleValue {
        var steps = 0
        while true {
            steps += 1
            guard steps <= bytes.count + 1 else { throw fail("too many steps") }
            let op = try u8()
            switch op {
            case 0x80: // PROTO
                let v = try u8()
                guard v <= 5 else { throw fail("unsupported pickle protocol \(v)") }
            case 0x95: _ = try u64() // FRAME: a hint only
            case 0x2E: // STOP
                let v = try pop()
                return v
            case 0x28: marks.append(stack.count); stack.append(.mark) // MARK
            case 0x30: _ = try pop() // POP
            case 0x31: _ = try popToMark() // POP_MARK
            case 0x32: try push(try top()) // DUP
            case 0x4E: try push(.none)
            case 0x88: try push(.bool(true))
            case 0x89: try push(.bool(false))
            case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try u32())))) // BININT
            case 0x4B: try push(.int(try u8())) // BININT1
            case 0x4D: try push(.int(try u16())) // BININT2
            case 0x8A: try push(.int(try long(try u8()))) // LONG1
            case 0x8B: try push(.int(try long(try u32()))) // LONG4
            case 0x47: // BINFLOAT: big-endian double
                let b = try take(8)
                try push(.float(Double(bitPattern: UInt64(bigEndian: b.loadUnaligned(as: UInt64.self)))))
            case 0x58: try push(.string(try utf8(try u32()))) // BINUNICODE
            case 0x8C: try push(.string(try utf8(try u8()))) // SHORT_BINUNICODE
            case 0x8D: try push(.string(try utf8(try u64()))) // BINUNICODE8
            case 0x54: try push(.string(String(decoding: try take(try u32()), as: UTF8.self))) // BINSTRING
            case 0x55: try push(.string(String(decoding: try take(try u8()), as: UTF8.self))) // SHORT_BINSTRING
            case 0x42: try push(.bytes(Array(try take(try u32())))) // BINBYTES
            case 0x43: try push(.bytes(Array(try take(try u8())))) // SHORT_BINBYTES
            case 0x8E: try push(.bytes(Array(try take(try u64())))) // BINBYTES8
            case 0x29: try push(.tuple([])) // EMPTY_TUPLE
            case 0x85: let a = try pop(); try push(.tuple([a])) // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); try push(.tuple([a, b])) // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); try push(.tuple([a, b, c])) // TUPLE3
            case 0x74: let items = try popToMark(); try push(.tuple(items)) // TUPLE
            case 0x5D: try push(.list(PickleList())) // EMPTY_LIST
            case 0x6C: let items = try popToMark(); try push(.list(PickleList(items))) // LIST
            case 0x7D: try push(.dict(PickleDict())) // EMPTY_DICT
            case 0x64: // DICT
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("DICT with an odd number of items") }
                let d = PickleDict()
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
                try push(.dict(d))
            case 0x8F: try push(.list(PickleList())) // EMPTY_SET (a set is read as a list)
            case 0x91: let items = try popToMark(); try push(.list(PickleList(items))) // FROZENSET
            case 0x61: // APPEND
                let v = try pop()
                try appendItems([v])
            case 0x65, 0x90: // APPENDS, ADDITEMS
                let items = try popToMark()
                try appendItems(items)
            case 0x73: // SETITEM
                let v = try pop(), k = try pop()
                guard case .dict(let d) = try top() else { throw fail("SETITEM on a \(try top().kind)") }
                d.set(k, v)
            case 0x75: // SETITEMS
                let items = try popToMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                guard case .dict(let d) = try top() else { throw fail("SETITEMS on a \(try top().kind)") }
                for i in stride(from: 0, to: items.count, by: 2) { d.set(items[i], items[i + 1]) }
            case 0x71: memo[try u8()] = try top() // BINPUT
            case 0x72: memo[try u32()] = try top() // LONG_BINPUT
            case 0x94: memo[memo.count] = try top() // MEMOIZE
            case 0x68: try get(try u8()) // BINGET
            case 0x6A: try get(try u32()) // LONG_BINGET
            case 0x63: // GLOBAL "module\nname\n"
                let module = try line(), name = try line()
                try push(try global(module, name))
            case 0x93: // STACK_GLOBAL
                let name = try pop(), module = try pop()
                guard let n = name.stringValue, let m = module.stringValue else { throw fail("STACK_GLOBAL needs two strings") }
                try push(try global(m, n))
            case 0x51: // BINPERSID
                let pid = try pop()
                try push(try persistent(pid))
            case 0x52: // REDUCE
                let args = try pop(), callable = try pop()
                guard case .global(let g) = callable else { throw fail("REDUCE on a \(callable.kind), not an allowed global") }
                guard case .tuple(let a) = args else { throw fail("REDUCE arguments are a \(args.kind), not a tuple") }
                try push(try call(g, a))
            case 0x62: // BUILD: only the `_metadata` state torch puts on an OrderedDict state dict (dropped)
                let state = try pop()
                let obj = try top()
                switch (obj, state) {
                case (.dict, .dict), (.dict, .none), (.dict, .tuple): break
                case (.tensor, _): break // a tensor's extra state (e.g. requires_grad) is irrelevant here
                default: throw fail("BUILD of a \(obj.kind) with a \(state.kind) state is not allowed")
                }
            default:
                throw fail(String(format: "refused opcode 0x%02x%@", op, Self.opcodeName(op).map { " (\($0))" } ?? ""))
            }
        }
    }

    static func opcodeName(_ op: Int) -> String? {
        [0x69: "INST", 0x6F: "OBJ", 0x81: "NEWOBJ", 0x92: "NEWOBJ_EX", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
         0x50: "PERSID", 0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER", 0x96: "BYTEARRAY8", 0x49: "INT",
         0x4C: "LONG", 0x53: "STRING", 0x56: "UNICODE", 0x46: "FLOAT", 0x67: "GET", 0x70: "PUT"][op]
    }

    private mutating func get(_ i: Int) throws {
        guard let v = memo[i] else { throw fail("memo key \(i) is not set") }
        try push(v)
    }

    private mutating func appendItems(_ items: [PickleValue]) throws {
        guard case .list(let l) = try top() else { throw fail("APPEND to a \(try top().kind)") }
        for v in items where Self.depth(v, limit: Self.maxDepth) >= Self.maxDepth {
            throw fail("containers nested deeper than \(Self.maxDepth)")
        }
        l.items.append(contentsOf: items)
    }

    /// A little-endian two's-complement integer of `n` bytes, which must fit 64 bits.
    private mutating func long(_ n: Int) throws -> Int {
        guard n <= 8 else { throw fail("integer of \(n) bytes does not fit 64 bits") }
        let b = try take(n)
        if n == 0 { return 0 }
        var v: UInt64 = 0
        for i in 0..<n { v |= UInt64(b[i]) << (8 * UInt64(i)) }
        if n < 8, b[n - 1] & 0x80 != 0 { v |= ~UInt64(0) << (8 * UInt64(n)) }
        return Int(Int64(bitPattern: v))
    }

    /// A persistent id `('storage', storage_type, key, location, numel)`.
    private func persistent(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, t.count == 5, t[0].stringValue == "storage" else {
            throw fail("persistent id is not ('storage', type, key, location, numel)")
        }
        guard case .global(let g) = t[1], g.hasPrefix("torch."), let dtype = Self.storageTypes[String(g.dropFirst(6))] else {
            throw fail("persistent id names storage type \(t[1].kind), not a torch storage class")
        }
        guard let key = t[2].stringValue, !key.isEmpty, !key.contains("/"), !key.contains("..") else {
            throw fail("persistent id has an invalid storage key")
        }
        guard let numel = t[4].intValue, numel >= 0 else { throw fail("storage \(key) has an invalid element count") }
        return .storage(TorchStorageRef(key: key, dtype: dtype, numel: numel))
    }

    private func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard let s = v.sequence else { throw fail("\(what) is a \(v.kind), not a tuple of ints") }
        return try s.map {
            guard let i = $0.intValue, i >= 0 else { throw fail("\(what) holds \($0.kind) \($0.intValue.map(String.init) ?? ""), not a non-negative int") }
            return i
        }
    }

    /// Applies one allowed callable.
    private func call(_ g: String, _ a: [PickleValue]) throws -> PickleValue {
        switch g {
        case "collections.OrderedDict", "builtins.dict":
            let d = PickleDict()
            if let first = a.first {
                guard a.count == 1, let pairs = first.sequence else { throw fail("\(g) called with \(a.count) arguments") }
                for p in pairs {
                    guard let kv = p.sequence, kv.count == 2 else { throw fail("\(g) item is not a pair") }
                    d.set(kv[0], kv[1])
                }
            }
            return .dict(d)
        case "builtins.set", "builtins.frozenset", "builtins.list":
            return .list(PickleList(a.first?.sequence ?? []))
        case "builtins.tuple", "torch.Size":
            return .tuple(a.first?.sequence ?? [])
        case "_codecs.encode":
            guard let s = a.first?.stringValue else { throw fail("_codecs.encode of a non-string") }
            // Protocol 2 pickles bytes as encode(latin1 text, 'latin1').
            return .bytes(s.unicodeScalars.map { UInt8(truncatingIfNeeded: $0.value) })
        case "torch.device":
            return .string(a.first?.stringValue ?? "")
        case "torch._utils._rebuild_parameter":
            guard let t = a.first, case .tensor = t else { throw fail("_rebuild_parameter of a non-tensor") }
            return t
        case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor_v3":
            // v2: (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
            // v3: (storage, offset, size, stride, requires_grad, backward_hooks, dtype[, metadata])
            guard a.count >= 4, case .storage(let storage) = a[0] else { throw fail("\(g) without a storage") }
            guard let offset = a[1].intValue, offset >= 0 else { throw fail("\(g): invalid storage offset") }
            let shape = try ints(a[2], "size"), stride = try ints(a[3], "stride")
            guard shape.count == stride.count else { throw fail("\(g): size has \(shape.count) dims but stride \(stride.count)") }
            var dtype = storage.dtype
            if g.hasSuffix("v3") {
                guard a.count >= 7, case .global(let d) = a[6], d.hasPrefix("torch."), let dt = Self.dtypeNames[String(d.dropFirst(6))] else {
                    throw fail("\(g) without a torch dtype")
                }
                dtype = dt
            }
            return .tensor(TorchTensorRef(storage: storage, dtype: dtype, offset: offset, shape: shape, stride: stride))
        default:
            throw fail("\(g) cannot be called")
        }
    }
}
