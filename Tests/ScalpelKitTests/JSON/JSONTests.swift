import Testing
@testable import ScalpelKit

@Suite struct JSONTests {
    @Test func parsesAndKeepsOrderAndExactIntegers() throws {
        let v = try JSONParser.parse(#"{"z": 1, "a": [true, null, -2.5e3, "\u00e9\n\ud83d\ude00"], "big": 9007199254740993}"#)
        #expect(v.objectValue?.map(\.0) == ["z", "a", "big"])
        #expect(v["big"] == .int(9_007_199_254_740_993))
        #expect(v["a"] == .array([.bool(true), .null, .double(-2500), .string("é\n😀")]))
    }

    @Test(arguments: [#"{"a":1,"a":2}"#, "[1,]", "{\"a\" 1}", "01", "\"\u{01}\"", "[1] x", #""\ud800""#, "nul"])
    func rejects(_ text: String) {
        #expect(throws: JSONParser.Failure.self) { try JSONParser.parse(text) }
    }

    @Test func writesCompactPythonAndPretty() {
        let v: JSONValue = .object([("a", [1, 2.5, 3.0]), ("b", "x\"y")])
        #expect(JSONWriter.string(v, style: .compact) == #"{"a":[1,2.5,3.0],"b":"x\"y"}"#)
        #expect(JSONWriter.string(v, style: .python) == #"{"a": [1, 2.5, 3.0], "b": "x\"y"}"#)
        #expect(JSONWriter.string(.object([("k", [1])]), style: .pretty) == "{\n  \"k\": [\n    1\n  ]\n}")
    }
}
