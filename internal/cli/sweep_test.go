package cli

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

func testStreams() (*Streams, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	return &Streams{In: strings.NewReader(""), Out: &out, Err: &errb, Getenv: func(string) string { return "" }}, &out, &errb
}

// Bad input must give exit 2 and a one-line message before anything is
// resolved or sent: every target here is an address that would be probed.
func TestSweepBadInputExitsTwo(t *testing.T) {
	cases := map[string][]string{
		"port out of range":   {"sweep", "198.18.2.2:70000"},
		"port zero":           {"sweep", "198.18.2.2:0"},
		"reversed range":      {"sweep", "198.18.2.2", "--sport", "30010-30000"},
		"sport too big":       {"sweep", "198.18.2.2", "--sport", "65536"},
		"sport empty element": {"sweep", "198.18.2.2", "--sport", "30000,,30001"},
		"count zero":          {"sweep", "198.18.2.2", "-c", "0"},
		"negative timeout":    {"sweep", "198.18.2.2", "--timeout", "-1s"},
		"rate zero":           {"sweep", "198.18.2.2", "--rate", "0"},
		"rate negative":       {"sweep", "198.18.2.2", "--rate", "-5"},
		"unknown format":      {"sweep", "198.18.2.2", "--format", "xml"},
		"unknown mode":        {"sweep", "198.18.2.2", "--mode", "udp"},
		"bad src":             {"sweep", "198.18.2.2", "--src", "nope"},
		"port flag disagrees": {"sweep", "198.18.2.2:80", "-p", "443"},
		"bad v6 brackets":     {"sweep", "[2001:db8::1"},
		"no target":           {"sweep"},
		"two targets":         {"sweep", "198.18.2.2", "198.18.2.3"},
		"unknown flag":        {"sweep", "198.18.2.2", "--bogus"},
		"too many ports":      {"sweep", "198.18.2.2", "--sport", "1-65535"},
		"both families":       {"sweep", "198.18.2.2", "-4", "-6"},
		"trace with csv":      {"sweep", "198.18.2.2", "--trace", "--format", "csv"},
		"trace in connect":    {"sweep", "198.18.2.2", "--trace", "--mode", "connect"},
		"trace max-ttl 0":     {"trace", "198.18.2.2", "--max-ttl", "0"},
		"trace hop-probes 0":  {"trace", "198.18.2.2", "--hop-probes", "0"},
		"trace format csv":    {"trace", "198.18.2.2", "--format", "csv"},
		"trace reversed":      {"trace", "198.18.2.2", "--sport", "9-1"},
		"trace no target":     {"trace"},
		"confidence above 1":  {"sweep", "198.18.2.2", "--confidence", "1.5"},
		"max-width 1":         {"sweep", "198.18.2.2", "--confidence", "0.9", "--max-width", "1"},
		"plan too big":        {"sweep", "198.18.2.2", "--confidence", "0.999999", "--max-width", "4096"},
		"absurd count":        {"sweep", "198.18.2.2", "--count", "1000000"},
		"count over echo seq": {"sweep", "198.18.2.2", "--sport", "30000", "--icmp", "0", "--count", "65536"},
		"too many probes":     {"sweep", "198.18.2.2", "--sport", "30000-30255", "-c", "5000"},
		"max-probes zero":     {"sweep", "198.18.2.2", "--max-probes", "0"},
		"timeout 1ns":         {"sweep", "198.18.2.2", "--timeout", "1ns"},
		"timeout 999us":       {"sweep", "198.18.2.2", "--timeout", "999us"},
		"trace too many":      {"trace", "198.18.2.2", "--sport", "1-4096", "--max-probes", "10000"},
		"trace every flow":    {"trace", "198.18.2.2", "--sport", "1-4096", "--flows", "0", "--max-probes", "100000"},
		"trace flows < 0":     {"trace", "198.18.2.2", "--flows", "-1"},
		"trace flows > 1024":  {"trace", "198.18.2.2", "--flows", "1025"},
		"sweep+trace too big": {"sweep", "198.18.2.2", "--trace", "--max-probes", "1000"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			s, out, errb := testStreams()
			if code := Execute(context.Background(), args, s); code != ExitUsage {
				t.Errorf("exit %d, want %d (stderr %q)", code, ExitUsage, errb.String())
			}
			msg := errb.String()
			if !strings.HasPrefix(msg, "ecmpscan: ") || strings.Count(msg, "\n") != 1 {
				t.Errorf("stderr %q: want one line starting with 'ecmpscan: '", msg)
			}
			if out.Len() != 0 {
				t.Errorf("stdout %q: want nothing", out.String())
			}
		})
	}
}

func TestParseTarget(t *testing.T) {
	cases := []struct {
		arg      string
		portFlag int
		host     string
		port     uint16
	}{
		{"198.18.2.2", 0, "198.18.2.2", 80},
		{"198.18.2.2:3306", 0, "198.18.2.2", 3306},
		{"198.18.2.2", 3306, "198.18.2.2", 3306},
		{"[2001:db8::2]:443", 0, "2001:db8::2", 443},
		{"[2001:db8::2]", 22, "2001:db8::2", 22},
		{"2001:db8::2", 0, "2001:db8::2", 80},
		{"db.example.net:5432", 5432, "db.example.net", 5432},
	}
	for _, c := range cases {
		host, port, err := parseTarget(c.arg, c.portFlag)
		if err != nil || host != c.host || port != c.port {
			t.Errorf("parseTarget(%q, %d) = %q, %d, %v; want %q, %d", c.arg, c.portFlag, host, port, err, c.host, c.port)
		}
	}
}

func TestParsePorts(t *testing.T) {
	got, err := parsePorts("30005, 30000-30002,30001,65535")
	if err != nil {
		t.Fatal(err)
	}
	if want := []uint16{30000, 30001, 30002, 30005, 65535}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestUnresolvableHostExitsThree(t *testing.T) {
	s, _, errb := testStreams()
	// .invalid never resolves (RFC 6761), so no probe can be sent.
	if code := Execute(context.Background(), []string{"sweep", "no-such-host.invalid:3306"}, s); code != ExitCannotProbe {
		t.Errorf("exit %d, want %d (stderr %q)", code, ExitCannotProbe, errb.String())
	}
}

// FuzzParsePorts: no --sport text panics the parser; what it accepts is a
// sorted list of distinct ports in 1-65535, and a refusal is exit 2.
func FuzzParsePorts(f *testing.F) {
	for _, s := range []string{"30000-30063", "1,65535", "30000-30002,30001", "9-1", "", ",", "0", "65536", "1-", "-5", " 7 "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, list string) {
		ports, err := parsePorts(list)
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("parsePorts(%q): %v is not a usage error", list, err)
			}
			return
		}
		if len(ports) == 0 {
			t.Fatalf("parsePorts(%q) accepted no ports", list)
		}
		for i, p := range ports {
			if p == 0 || (i > 0 && p <= ports[i-1]) {
				t.Fatalf("parsePorts(%q) = ...%d at %d: not sorted distinct ports", list, p, i)
			}
		}
	})
}

// FuzzParseTarget: no HOST[:PORT] panics; what is accepted has a host and
// a port in 1-65535, and a refusal is exit 2.
func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"198.18.2.2:3306", "[2001:db8::2]:443", "2001:db8::2", "[fe80::1%eth0]:22", "db:0", "[::1", ":80", "a:b:c"} {
		f.Add(s, 0)
	}
	f.Add("db", 70000)
	f.Fuzz(func(t *testing.T, arg string, portFlag int) {
		host, port, err := parseTarget(arg, portFlag)
		if err != nil {
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != ExitUsage {
				t.Fatalf("parseTarget(%q, %d): %v is not a usage error", arg, portFlag, err)
			}
			return
		}
		if host == "" || port == 0 {
			t.Fatalf("parseTarget(%q, %d) = %q, %d", arg, portFlag, host, port)
		}
		if portFlag != 0 && int(port) != portFlag {
			t.Fatalf("parseTarget(%q, %d) = port %d, not the flag's", arg, portFlag, port)
		}
	})
}

func TestVersion(t *testing.T) {
	s, out, _ := testStreams()
	if code := Execute(context.Background(), []string{"--version"}, s); code != 0 {
		t.Fatalf("exit %d", code)
	}
	if got := out.String(); !strings.HasPrefix(got, "ecmpscan ") || !strings.Contains(got, "(commit ") || !strings.Contains(got, "go1.") {
		t.Errorf("--version printed %q; want version, commit and Go version", got)
	}
}
