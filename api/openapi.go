package api

import _ "embed"

// openAPIDoc is the OpenAPI 3.1 description served at /v1/openapi.json.
// It is written by hand; TestOpenAPIMatchesRoutes keeps it in step with
// the route table and the error codes.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3.1 document of the API.
func OpenAPI() []byte { return append([]byte(nil), openAPIDoc...) }
