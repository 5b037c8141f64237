import Foundation

/// A value built by `RestrictedUnpickler`: only plain data, tensors and storage references. Nothing in
/// it can run code.
indirect enum PickleValue {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleValue])
    case list(PickleList)
    case dict(PickleDict)
    /// An allowed global that has not been called (a storage class, a dtype, a rebuild function).
    case global(String)
    /// A storage named by a persistent id `('storage', storage_type, key, location, numel)`.
    case storage(TorchStorageRef)
    /// A tensor rebuilt by `torch._utils._rebuild_tensor_v2/_v3` or `_rebuild_parameter`.
    case tensor(TorchTensorRef)
    /// The MARK sentinel on the stack.
    case mark

    var intValue: Int? { if case .int(let v) = self { return v }; return nil }
    var stringValue: String? { if case .string(let v) = self { return v }; return nil }
    /// The elements of a tuple or a list.
    var sequence: [PickleValue]? {
        switch self {
        case .tuple(let t): return t
        case .list(let l): return l.items
        default: return nil
        }
    }
    /// A short name of the kind, for error messages.
    var kind: String {
        switch self {
        case .none: return "None"
        case .bool: return "bool"
        case .int: return "int"
        case .float: return "float"
        case .string: return "str"
        case .bytes: return "bytes"
        case .tuple: return "tuple"
        case .list: return "list"
        case .dict: return "dict"
        case .global(let g): return g
        case .storage: return "storage"
        case .tensor: return "tensor"
        case .mark: return "mark"
        }
    }
}

/// A mutable pickled list (APPEND may reach it through the memo).
final class PickleList {
    var items: [PickleValue] = []
    init(_ items: [PickleValue] = []) { self.items = items }
}

/// A mutable pickled dict, keys in insertion order (a later SETITEM of the same key replaces the value).
final class PickleDict {
    private(set) var entries: [(key: PickleValue, value: PickleValue)] = []
    private var stringIndex: [String: Int] = [:]
    private var intIndex: [Int: Int] = [:]

    func set(_ key: PickleValue, _ value: PickleValue) {
        switch key {
        case .string(let s):
            if let i = stringIndex[s] { entries[i].value = value; return }
            stringIndex[s] = entries.count
        case .int(let k):
            if let i = intIndex[k] { entries[i].value = value; return }
            intIndex[k] = entries.count
        default:
            break
        }
        entries.append((key, value))
    }
}

/// A storage reference from a persistent id.
struct TorchStorageRef {
    /// The storage's entry under `data/` in the archive.
    var key: String
    /// The element type of the storage class (`torch.FloatStorage` -> F32; `UntypedStorage` -> U8).
    var dtype: DType
    /// Elements of `dtype` in the storage.
    var numel: Int
}

/// A tensor as a view of a storage: `storage_offset`, `size` and `stride` in elements.
struct TorchTensorRef {
    var storage: TorchStorageRef
    var dtype: DType
    var offset: Int
    var shape: [Int]
    var stride: [Int]
}
