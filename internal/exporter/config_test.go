package exporter

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/ecmpscan/ecmpscan/internal/core"
)

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig("test.yml", []byte(testConfig))
	if err != nil {
		t.Fatal(err)
	}
	m := cfg.Modules["mysql"]
	if m.Port != 3306 || len(m.Sports) != 64 || m.Count != 3 || m.Rate != 500 || m.Timeout != 200*time.Millisecond ||
		m.ICMP != 4 || m.Mode != core.ModeRaw || m.Trace || m.ExportPorts {
		t.Errorf("mysql = %+v", m)
	}
	if s := cfg.Modules["slow"]; s.Port != 80 || s.Mode != core.ModeAuto || s.Timeout != time.Second || s.ICMP != 8 {
		t.Errorf("defaults: %+v", s)
	}
	if cfg.Limits != (Limits{Concurrent: 2, Rate: 5000}) || len(cfg.Allow) != 2 || !cfg.Allowed(server) || cfg.Allowed(netip.MustParseAddr("192.0.2.1")) {
		t.Errorf("limits %+v allow %v", cfg.Limits, cfg.Allow)
	}
}

// A bad config fails with the file, the line and the key.
func TestConfigErrors(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"modules:\n  m:\n    sport: 1-2\n", "test.yml:1: allow: required"},
		{"allow: [198.18.0.0/15]\n", "modules: required"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    sport: 30000-x\n", "test.yml:4: modules.m.sport:"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    count: 0\n", "test.yml:4: modules.m.count: want a whole number from 1"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    mode: fast\n", "test.yml:4: modules.m.mode: want auto, raw or connect"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    timeout: 1\n", "test.yml:4: modules.m.timeout: want a duration"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    trace: yes please\n", "test.yml:4: modules.m.trace: want true or false"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    portt: 80\n", "test.yml:4: modules.m.portt: unknown key"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m:\n    mode: connect\n    trace: true\n", "modules.m.trace: tracing needs raw sockets"},
		{"allow: [198.18.0.0/15, everywhere]\nmodules:\n  m: {}\n", `test.yml:1: allow: "everywhere" is not a prefix`},
		{"allow: []\nmodules:\n  m: {}\n", "allow: required"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m: {}\nlimits:\n  rate: -1\n", "test.yml:5: limits.rate:"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m: {}\nlimits:\n  burst: 3\n", "test.yml:5: limits.burst: unknown key"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m: {}\nmodules:\n  n: {}\n", "test.yml:4: modules: given twice"},
		{"allow: [198.18.0.0/15]\nmodules:\n  m: {}\nextra: 1\n", "test.yml:4: extra: unknown key"},
		{"- a\n- b\n", "want a mapping"},
		{"allow: [\n", "test.yml"},
	} {
		_, err := ParseConfig("test.yml", []byte(c.yaml))
		if err == nil || !errors.Is(err, ErrConfig) || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: got %v, want one line with %q", c.yaml, err, c.want)
		}
	}
}

// FuzzParseConfig: any file is refused with ErrConfig or gives a config
// within its bounds.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(testConfig))
	f.Add([]byte("allow: [198.18.0.0/15]\nmodules:\n  m: {sport: 1-65535}\n"))
	f.Add([]byte("allow: &a [198.18.0.0/15]\nmodules: *a\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		cfg, err := ParseConfig("f.yml", b)
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error without ErrConfig: %v", err)
			}
			return
		}
		if len(cfg.Allow) == 0 || len(cfg.Modules) == 0 || cfg.Limits.Concurrent < 1 || !(cfg.Limits.Rate > 0) {
			t.Fatalf("config out of bounds: %+v", cfg)
		}
		for _, m := range cfg.Modules {
			if len(m.Sports) == 0 || len(m.Sports) > maxPorts || m.Count < 1 || !(m.Rate > 0) || m.Timeout <= 0 {
				t.Fatalf("module out of bounds: %+v", m)
			}
		}
	})
}

// The configs shipped in deploy/ are valid: the example and the one in the
// Kubernetes ConfigMap.
func TestDeployConfigs(t *testing.T) {
	if _, err := LoadConfig("../../deploy/exporter.yml"); err != nil {
		t.Error(err)
	}
	b, err := os.ReadFile("../../deploy/kubernetes/ecmpscan-exporter.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	found := false
	for {
		var doc struct {
			Kind string            `yaml:"kind"`
			Data map[string]string `yaml:"data"`
		}
		if err := dec.Decode(&doc); err != nil {
			break
		}
		if doc.Kind == "ConfigMap" {
			found = true
			if _, err := ParseConfig("configmap exporter.yml", []byte(doc.Data["exporter.yml"])); err != nil {
				t.Error(err)
			}
		}
	}
	if !found {
		t.Error("no ConfigMap in the DaemonSet manifest")
	}
}
