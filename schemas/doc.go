// Package schemas turns alerts into documents: ECS 9.x alert documents (the
// default), the original tool's "native" events, and the per-window report.
// It also embeds the JSON Schemas of all three and the Elasticsearch index
// template. Formatting and report building are pure; only DetectHost and
// WriteReportAtomic do I/O.
//
// # Event formats
//
// Both formatters write one compact JSON object per alert, valid UTF-8,
// without a trailing newline (sinks add it). Hostile input cannot break a
// line or blow up a document: invalid UTF-8 becomes U+FFFD, control
// characters are JSON-escaped, and fields are capped (process.command_line
// 32 KiB, messages 8 KiB, names and ids 1 KiB, 256 arguments / 32 KiB of
// arguments, evidence 64 keys, 100 items, 6 levels, 4 KiB strings); a cut
// string ends in "…[truncated]".
//
// ECS (--format ecs, ecs-alert.schema.json): event.kind "alert";
// event.category ["network","intrusion_detection"], plus "process" (and
// event.type "start") for process-spawn and reverse-shell alerts; event.type
// ["info"]; event.action and rule.id are the rule id; event.id the alert id
// (when an alert has none, a stable hash of rule, entity, technique, time,
// endpoints and message); event.dataset = data_stream.dataset;
// event.start/end for windowed alerts. threat.* are ECS arrays: for a
// sub-technique such as T1071.004, threat.technique is T1071 and
// threat.technique.subtechnique T1071.004, with names, tactics and
// references from the TechniqueLookup the caller supplies (ids and
// references are written even without one). network.community_id is
// Community ID v1 (seed 0) for TCP and UDP. Fields ECS lacks live under
// netsentinel.* only: threat_type, severity (name), technique, entity,
// count, recommendation, evidence (an object, mapped as flattened).
//
// Native (--format native, native-alert.schema.json): the original's fields
// with the same names — timestamp (RFC 3339 with the zone of the alert's
// time), threat_type, severity, source_ip, dest_ip, port (destination port),
// description, evidence, mitre_tactic (tactic names, ", "-joined),
// mitre_technique — always present ("" / 0 / {} when not applicable). The
// documented extension follows them: event_id, rule, mitre_technique_name,
// mitre_tactic_ids, source_port, transport, direction, window_start,
// window_end, count, entity, recommendation, and process {pid, name,
// executable, command_line, args, user, uid, ppid, parent_name}.
//
// # Severity
//
// detect.Severity 1..4 maps to (see severity.go):
//
//	detect      native/report   event.severity   event.risk_score (= risk_score_norm)
//	1 low       LOW             2                21
//	2 medium    MEDIUM          3                47
//	3 high      HIGH            4                73
//	4 critical  CRITICAL        5                99
//
// Higher is always worse. event.severity uses the 0..7 scale of Elastic's
// Falco mapping (inverted syslog level: notice, warning, error, critical);
// the risk scores are Kibana's defaults for the four rule severities.
//
// # Window report
//
// BuildReport makes one Report per window (report.schema.json): the
// original's report_metadata, executive_summary (total_threats, by_severity,
// by_mitre_tactic, active_connections, listening_ports, risk_level),
// threat_events (native alerts, worst severity first, then by time),
// network_state (active_connections, listening_ports, arp_table),
// system_metrics and recommendations (one per alert type present, worst
// first), plus executive_summary.by_technique, recommendation_details,
// detection_statistics, collection_statistics and sink_statistics
// (delivered = sent; failed = dead-lettered + dropped; raw counters).
// risk_level follows the original's rule — CRITICAL if any critical; HIGH if
// more than 2 high; MEDIUM if any high or more than 3 medium; LOW if any
// medium — extended so that any low alert also gives LOW; else CLEAN.
// active_connections are established TCP connections and connected UDP
// sockets; listening_ports are TCP LISTEN sockets and bound, unconnected UDP
// sockets. Lists are capped (1,000 each) with omitted_* counts; summary
// counts stay exact.
//
// WriteReportAtomic writes a report as indented JSON through a temporary
// file (mode 0600) in the target directory, fsync, rename and directory
// fsync, so readers never see a partial report.
//
// # Report file names
//
// A single-window run writes the path given (-o, default
// netsentinel_report.json). In continuous mode each window's report gets its
// own file, named by WindowReportPath: the window's end time in UTC,
// "20060102T150405Z" form, inserted before the extension —
// netsentinel_report.json → netsentinel_report-20261125T214500Z.json. The
// names sort in time order.
//
// # JSON Schemas and the index template
//
// ecs-alert.schema.json, native-alert.schema.json and report.schema.json
// (draft 2020-12) are embedded (ECSAlertSchema, NativeAlertSchema,
// ReportSchema); the package's tests validate every formatter's output
// against them (a JSON Schema library is a test dependency only, so the
// agent does not load and initialise it). elasticsearch/index-template.json
// (IndexTemplate, install as IndexTemplateName) is a composable template for
// logs-netsentinel.alert-* data streams, priority 200 (above the built-in
// logs template's 100), composed of logs@mappings, logs@settings,
// ecs@mappings and the optional logs@custom and
// logs-netsentinel.alert@custom, mapping every field the ECS formatter can
// write with its ECS type. The tests generate it from the ECS reference
// (../shared/reference/ecs-fields.json) and fail when it is stale; refresh it
// and the golden files in testdata/golden with
//
//	go test ./schemas -update
package schemas
