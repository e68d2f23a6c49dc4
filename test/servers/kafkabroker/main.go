// Command kafkabroker runs a single-broker Kafka-protocol server (kfake) on a
// loopback address for NetSentinel's Kafka sink tests. It lives in its own
// module so that kfake stays out of NetSentinel's go.mod.
//
// It prints "ready <host:port>" on stdout (and writes the same line to
// -ready-file, if given) once it accepts connections, and exits cleanly on
// SIGTERM or SIGINT. With -data-dir the log survives a restart.
//
//	kafkabroker -port 19092 -partitions 3 -topics alerts,other \
//	    -sasl PLAIN:user:pass,SCRAM-SHA-256:u2:p2 -auto-create=false
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kafkabroker:", err)
		os.Exit(1)
	}
}

type options struct {
	addr, readyFile, dataDir          string
	port, partitions, maxMessageBytes int
	autoCreate, syncWrites            bool
	topics, sasl                      string
	tlsCert, tlsKey, tlsClientCA      string
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("kafkabroker", flag.ContinueOnError)
	fs.StringVar(&o.addr, "addr", "127.0.0.1", "loopback address to listen on (127.0.0.0/8 or ::1 only)")
	fs.IntVar(&o.port, "port", 0, "TCP port (0 = pick a free one; the chosen address is printed)")
	fs.IntVar(&o.partitions, "partitions", 3, "partitions of pre-created and auto-created topics")
	fs.StringVar(&o.topics, "topics", "", "comma-separated topics to create at start-up")
	fs.BoolVar(&o.autoCreate, "auto-create", false, "create unknown topics on first use (Kafka's auto.create.topics.enable)")
	fs.StringVar(&o.sasl, "sasl", "", "comma-separated MECHANISM:user:password entries (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512); enables SASL")
	fs.IntVar(&o.maxMessageBytes, "message-max-bytes", 0, "broker message.max.bytes (0 = kfake default 1048588)")
	fs.StringVar(&o.dataDir, "data-dir", "", "persist the log here so a restarted broker keeps it")
	fs.BoolVar(&o.syncWrites, "sync-writes", false, "fsync every produced batch (with -data-dir)")
	fs.StringVar(&o.readyFile, "ready-file", "", "write \"ready <addr>\" here once listening")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "PEM server certificate: serve TLS")
	fs.StringVar(&o.tlsKey, "tls-key", "", "PEM server key (with -tls-cert)")
	fs.StringVar(&o.tlsClientCA, "tls-client-ca", "", "PEM CA: require and verify client certificates")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	ip := net.ParseIP(o.addr)
	if ip == nil || !ip.IsLoopback() {
		return o, fmt.Errorf("-addr %q: only loopback addresses are allowed", o.addr)
	}
	if o.port < 0 || o.port > 65535 {
		return o, fmt.Errorf("-port %d: out of range", o.port)
	}
	if o.partitions < 1 {
		return o, fmt.Errorf("-partitions %d: must be at least 1", o.partitions)
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return o, errors.New("-tls-cert and -tls-key go together")
	}
	if o.tlsClientCA != "" && o.tlsCert == "" {
		return o, errors.New("-tls-client-ca needs -tls-cert and -tls-key")
	}
	return o, nil
}

func clusterOpts(o options) ([]kfake.Opt, error) {
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(o.port),
		kfake.DefaultNumPartitions(o.partitions),
		// kfake always binds 127.0.0.1; honour -addr by rewriting the host.
		kfake.ListenFn(func(network, address string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(address)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(o.addr, port))
		}),
	}
	if o.autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation())
	}
	if o.topics != "" {
		var ts []string
		for _, t := range strings.Split(o.topics, ",") {
			if t = strings.TrimSpace(t); t != "" {
				ts = append(ts, t)
			}
		}
		opts = append(opts, kfake.SeedTopics(int32(o.partitions), ts...))
	}
	if o.sasl != "" {
		opts = append(opts, kfake.EnableSASL())
		for _, entry := range strings.Split(o.sasl, ",") {
			parts := strings.SplitN(entry, ":", 3)
			if len(parts) != 3 || parts[1] == "" {
				return nil, fmt.Errorf("-sasl entry %q: want MECHANISM:user:password", entry)
			}
			mech := strings.ToUpper(parts[0])
			switch mech {
			case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			default:
				return nil, fmt.Errorf("-sasl entry %q: unknown mechanism %q", entry, parts[0])
			}
			opts = append(opts, kfake.Superuser(mech, parts[1], parts[2]))
		}
	}
	if o.maxMessageBytes > 0 {
		opts = append(opts, kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(o.maxMessageBytes)}))
	}
	if o.dataDir != "" {
		opts = append(opts, kfake.DataDir(o.dataDir))
		if o.syncWrites {
			opts = append(opts, kfake.SyncWrites())
		}
	}
	if o.tlsCert != "" {
		cert, err := tls.LoadX509KeyPair(o.tlsCert, o.tlsKey)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if o.tlsClientCA != "" {
			pem, err := os.ReadFile(o.tlsClientCA)
			if err != nil {
				return nil, fmt.Errorf("-tls-client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("-tls-client-ca %s: no PEM certificates", o.tlsClientCA)
			}
			tc.ClientCAs = pool
			tc.ClientAuth = tls.RequireAndVerifyClientCert
		}
		opts = append(opts, kfake.TLS(tc))
	}
	return opts, nil
}

func run(args []string) error {
	o, err := parseFlags(args)
	if err != nil {
		return err
	}
	opts, err := clusterOpts(o)
	if err != nil {
		return err
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start cluster: %w", err)
	}
	defer c.Close()

	addrs := c.ListenAddrs()
	line := "ready " + strings.Join(addrs, ",") + "\n"
	if o.readyFile != "" {
		tmp := o.readyFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(line), 0o600); err != nil {
			return fmt.Errorf("-ready-file: %w", err)
		}
		if err := os.Rename(tmp, o.readyFile); err != nil {
			return fmt.Errorf("-ready-file: %w", err)
		}
	}
	if _, err := os.Stdout.WriteString(line); err != nil {
		return err
	}
	s := <-sig
	fmt.Fprintf(os.Stderr, "kafkabroker: %v, shutting down\n", s)
	return nil
}
