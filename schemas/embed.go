package schemas

import _ "embed"

// JSON Schemas (draft 2020-12) of the documents NetSentinel writes.
var (
	//go:embed ecs-alert.schema.json
	ECSAlertSchema []byte
	//go:embed native-alert.schema.json
	NativeAlertSchema []byte
	//go:embed report.schema.json
	ReportSchema []byte
)

// IndexTemplate is the composable Elasticsearch index template for the
// logs-netsentinel.alert-* data streams (PUT _index_template/<IndexTemplateName>).
// It is generated from the ECS reference by the package tests
// (go test ./schemas -run TestIndexTemplate -update).
//
//go:embed elasticsearch/index-template.json
var IndexTemplate []byte

// IndexTemplateName is the name to install IndexTemplate under.
const IndexTemplateName = "logs-netsentinel.alert"

// Schema $id URLs.
const (
	ECSAlertSchemaID    = "https://netsentinel.dev/schemas/ecs-alert.schema.json"
	NativeAlertSchemaID = "https://netsentinel.dev/schemas/native-alert.schema.json"
	ReportSchemaID      = "https://netsentinel.dev/schemas/report.schema.json"
)
