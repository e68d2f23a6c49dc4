package config

import _ "embed"

// Example is the full commented example configuration for a host service
// (continuous mode, state under /var/lib/netsentinel, alerts to a file under
// /var/log/netsentinel): what `netsentinel config example` prints and what
// the packages install as /etc/netsentinel/netsentinel.yaml.
//
//go:embed example.yaml
var Example []byte
