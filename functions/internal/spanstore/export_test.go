package spanstore

// SetQueryReads makes the store's tree reads use the query meant for real
// Spanner even in emulator mode, so tests can check it on small data.
func SetQueryReads(s *Store, on bool) { s.queryReads = on }

// Parsers and encoders under fuzz tests.
var (
	ParseSignatureLine = parseSignatureLine
	EncodePosition     = encodePosition
	DecodePosition     = decodePosition
)
