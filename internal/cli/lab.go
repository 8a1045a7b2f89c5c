package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/ecmpscan/ecmpscan/internal/lab"
	"github.com/ecmpscan/ecmpscan/internal/responder"
	"github.com/ecmpscan/ecmpscan/internal/route"
)

// newLabCommand is `ecmpscan lab`: a real ECMP fabric in network
// namespaces, for demos and integration tests.
func newLabCommand(s *Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Build a real Linux ECMP fabric in network namespaces (needs root)",
		Long: `lab builds a real Linux ECMP fabric out of network namespaces:

  client -- r1 ==(N-way ECMP)== p1..pN [==(M-way full mesh)== q1..qM] == r2 -- server

Every router hashes addresses, protocol and ports with its own fixed seed,
in both directions, for IPv4 and IPv6. Faults are blackhole routes and
nftables rules on chosen routers. Run probes from the client namespace.
Everything stays inside namespaces named esl-<name>-<node>, with addresses
from 198.18.0.0/15 and 2001:db8::/32.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(newLabUpCommand(s), newLabDownCommand(s), newLabStatusCommand(s), newLabServeCommand(s))
	return cmd
}

// labUpFlags are lab up's flags, before they are a validated lab.Spec.
type labUpFlags struct {
	name          string
	width, width2 int
	seed          uint32
	ports, faults []string
	icmpSource    string
	icmpPath      string
	ipid          string
	hashSeed      string
	routes        string
	ipOptions     string
	rateLimit     int
	respPort      uint16
}

const labUpLong = `up builds the fabric (replacing any lab of the same name), injects the
faults, and starts a server daemon that accepts and resets connections on
the server ports.

Faults (repeat --fault):
  blackhole-fwd@NODE   blackhole route to the server prefixes
  blackhole-ret@NODE   blackhole route to the client prefixes
  drop-synack@NODE     drop forwarded TCP SYN-ACKs
  loss=PCT@NODE        drop PCT % of forwarded packets
  link-drop@A-B        kill the link between adjacent routers A and B
  link-oneway@A-B      kill it one way only: A loses what it sends toward B
  silent@NODE          never send ICMP time-exceeded
NODE is a router: r1, p1..pN, q1..qM, r2.

ICMP errors (time exceeded, unreachable) come, with --icmp-source:
  outgoing    (the default) from the address of the link the error
              leaves by: the kernel's default, as on plain Linux, FRR and
              SONiC routers (with --icmp-path flow, a fabric of plain
              Linux routers)
  router-id   from the router's ID, one address per router whatever the
              flow: 198.18.255.K and 2001:db8:ffff::K on its loopback,
              K = 1 for r1, 10+i for p_i, 40+j for q_j, 99 for r2
  inbound     from the address of the link the packet came in on

Their path back toward the client, with --icmp-path:
  flow        (the default) Linux's own behaviour: a router hashes its
              ICMP error with the offending flow's keys, so the error for
              a flow leaves on the same member as that flow's return
              traffic, and a return-path fault also eats the
              time-exceeded messages of exactly the flows it breaks (they
              look like forward losses)
  fixed       each router sends its own ICMP errors to ONE
              member of its return ECMP group, fixed by its seed, whatever
              flow drew them, as many hardware routers do; routers further
              on forward them like any packet, by their own header. So a
              router answers every flow that reaches it, or none if a
              fault lies on its errors' path (lab status: "icmp via")

The IPv4 identification of a router's own packets, with --ipid:
  kernel      (the default) Linux's: a counter per destination and
              source address, so one router's addresses share none
  shared      one counter per router for every packet it sends, as many
              hardware routers keep: the answers of one router's
              addresses count up together (ecmpscan groups them so)

The routers' multipath hash seeds, with --hash-seed:
  per-router  (the default) each router its own seed, as fabrics set
              up against polarization have: a flow's way back is
              drawn apart from its way out
  shared      one seed on every router, as gear left at one vendor
              default has. Linux's hash is symmetric, so a flow comes
              back over the members it went out by (a fault on a
              member's way back fails the flows that went out over it),
              and the tiers polarize (they choose in lockstep)

What the routers route, with --routes:
  hosts       (the default) the client and server prefixes only, as
              fabrics that carry their hosts' prefixes alone do: the
              addresses a trace sees answer nothing sent to them
  all         every link and router ID too, along the shortest paths,
              as an IGP carrying connected routes does: they answer
              echo requests (trace's alias test asks them)

What the routers do with IPv4 packets that carry options, with --ip-options:
  honour      (the default) Linux's: forward them, and stamp a timestamp
              option's entries naming the router's own addresses (the
              alias test's evidence)
  drop        drop them, to the router or through it, as much gear and
              many filters do: the alias test hears nothing back`

func newLabUpCommand(s *Streams) *cobra.Command {
	var o labUpFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Bring up a lab fabric and its server",
		Long:  labUpLong,
		Example: `  ecmpscan lab up --width 4 --fault blackhole-fwd@p2
  ecmpscan lab up --name two --width 2 --width2 3 --fault link-drop@p1-q3 --fault loss=20@q2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			spec, err := o.spec()
			if err != nil {
				return err
			}
			return runLabUp(cmd, s, spec)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&o.name, "name", "demo", "lab name (1-8 of a-z, 0-9)")
	fl.IntVar(&o.width, "width", 4, "ECMP width of the first tier (p1..pN), 1-16")
	fl.IntVar(&o.width2, "width2", 0, "ECMP width of a second tier (q1..qM), 0-16; 0 = one tier")
	fl.Uint32Var(&o.seed, "seed", 1, "seed mixed into every router's multipath hash seed")
	fl.StringSliceVar(&o.ports, "port", []string{"80", "3306"}, "server ports")
	fl.StringArrayVar(&o.faults, "fault", nil, "fault KIND@NODE to inject (repeatable)")
	fl.StringVar(&o.icmpSource, "icmp-source", lab.DefaultICMPSource,
		"source of the routers' ICMP errors: "+strings.Join(lab.ICMPSources, ", "))
	fl.StringVar(&o.icmpPath, "icmp-path", lab.DefaultICMPPath,
		"path of the routers' own ICMP errors toward the client: "+strings.Join(lab.ICMPPaths, " or ")+
			" (fixed: one next hop per router; flow: that of the offending flow's return, as Linux does)")
	fl.StringVar(&o.ipid, "ipid", lab.DefaultIPID,
		"IPv4 identification of the routers' own packets: "+strings.Join(lab.IPIDModes, " or ")+
			" (shared: one counter per router, as many hardware routers keep)")
	fl.StringVar(&o.hashSeed, "hash-seed", lab.DefaultHashSeed,
		"the routers' multipath hash seeds: "+strings.Join(lab.HashSeedModes, " or ")+
			" (shared: one seed on every router; Linux's hash is symmetric, so flows come back the way they went)")
	fl.StringVar(&o.ipOptions, "ip-options", lab.DefaultIPOptions,
		"what the routers do with IPv4 packets carrying options: "+strings.Join(lab.IPOptionsModes, " or ")+
			" (honour: Linux's, stamping timestamps; drop: as much gear and many filters do)")
	fl.StringVar(&o.routes, "routes", lab.DefaultRoutes,
		"what the routers route: "+strings.Join(lab.RoutesModes, " or ")+
			" (hosts: the client and server prefixes only; all: every link and router ID too, as an IGP carrying connected routes does, so their addresses answer echo requests)")
	fl.IntVar(&o.rateLimit, "icmp-ratelimit", lab.DefaultICMPRateLimitMS,
		"rate-limit the routers' ICMP errors as Linux does: a burst of 6 per destination, then one per this many ms (0: no limit)")
	fl.Uint16Var(&o.respPort, "responder", 0, "also run an `ecmpscan responder` on this port at the server's addresses (token in "+lab.TokenPath("NAME")+")")
	return cmd
}

// spec is the flags as a validated lab spec.
func (o labUpFlags) spec() (lab.Spec, error) {
	spec := lab.Spec{Name: o.name, Width: o.width, Width2: o.width2, Seed: o.seed, ICMPSource: o.icmpSource, ICMPPath: o.icmpPath,
		IPID: o.ipid, HashSeed: o.hashSeed, Routes: o.routes, IPOptions: o.ipOptions, ICMPRateLimitMS: o.rateLimit, Responder: o.respPort}
	for _, p := range o.ports {
		for _, f := range strings.Split(p, ",") {
			n, err := strconv.ParseUint(strings.TrimSpace(f), 10, 16)
			if err != nil || n == 0 {
				return spec, fmt.Errorf("%w: --port %q: want ports 1..65535", lab.ErrBadSpec, f)
			}
			spec.Ports = append(spec.Ports, uint16(n))
		}
	}
	for _, f := range o.faults {
		ft, err := lab.ParseFault(f)
		if err != nil {
			return spec, err
		}
		spec.Faults = append(spec.Faults, ft)
	}
	spec = spec.WithDefaults()
	return spec, spec.Validate()
}

// runLabUp builds the fabric, its responder token and its server daemon;
// a daemon that does not start takes the fabric down with it.
func runLabUp(cmd *cobra.Command, s *Streams, spec lab.Spec) error {
	if err := needRoot(); err != nil {
		return err
	}
	ctx := cmd.Context()
	start := time.Now()
	f, err := lab.Up(ctx, spec)
	if err != nil {
		return err
	}
	if spec.Responder != 0 {
		os.Remove(lab.TokenPath(spec.Name)) // a fresh token per lab
		if err := responder.WriteNewToken(lab.TokenPath(spec.Name)); err != nil {
			return err
		}
	}
	if err := startServeDaemon(ctx, cmd, f); err != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		return errors.Join(err, f.Down(dctx))
	}
	printLabUp(s, cmd.Root().Name(), f, time.Since(start))
	return nil
}

func printLabUp(s *Streams, prog string, f *lab.Fabric, took time.Duration) {
	w := s.Out
	topo := fmt.Sprintf("c - r1 =%d= p1..p%d", f.Spec.Width, f.Spec.Width)
	if f.Spec.Width2 > 0 {
		topo += fmt.Sprintf(" =%d= q1..q%d", f.Spec.Width2, f.Spec.Width2)
	}
	topo += " - r2 - s"
	ports := make([]string, len(f.Spec.Ports))
	for i, p := range f.Spec.Ports {
		ports[i] = strconv.Itoa(int(p))
	}
	faults := make([]string, len(f.Spec.Faults))
	for i, ft := range f.Spec.Faults {
		faults[i] = ft.String()
	}
	if len(faults) == 0 {
		faults = []string{"none"}
	}
	fmt.Fprintf(w, "lab %s is up (%s, in %v)\n", f.Spec.Name, topo, took.Round(time.Millisecond))
	fmt.Fprintf(w, "  client netns: %s  (%s, %s)\n", f.ClientNS(), f.Client4, f.Client6)
	fmt.Fprintf(w, "  server:       %s, %s  ports %s  (daemon pid %d, netns %s)\n",
		f.Server4, f.Server6, strings.Join(ports, ","), f.ServerPID, f.ServerNS())
	fmt.Fprintf(w, "  faults:       %s\n", strings.Join(faults, " "))
	switch f.Spec.ICMPSource {
	case lab.ICMPFromInbound:
		fmt.Fprintf(w, "  icmp source:  %s (errors from the inbound link's address)\n", f.Spec.ICMPSource)
	case lab.ICMPFromOutgoing:
		fmt.Fprintf(w, "  icmp source:  %s (errors from the address of the link they leave by)\n", f.Spec.ICMPSource)
	default:
		fmt.Fprintf(w, "  icmp source:  %s (errors from router IDs: r1 %s %s, p1 %s, ..., r2 %s)\n", f.Spec.ICMPSource,
			f.RouterID("r1", false), f.RouterID("r1", true), f.RouterID("p1", false), f.RouterID("r2", false))
	}
	if f.Spec.ICMPPath == lab.ICMPPathFlow {
		fmt.Fprintf(w, "  icmp path:    %s (a router's errors for a flow go where that flow's return goes)\n", f.Spec.ICMPPath)
	} else {
		fmt.Fprintf(w, "  icmp path:    %s (each router's own errors leave on one next hop: r2 via %s; see lab status)\n",
			f.Spec.ICMPPath, f.ICMPNextHop("r2"))
	}
	if f.Spec.ICMPRateLimitMS > 0 {
		fmt.Fprintf(w, "  icmp limit:   a burst of 6 per destination, then one per %d ms (Linux's icmp_ratelimit)\n", f.Spec.ICMPRateLimitMS)
	}
	if f.Spec.IPID == lab.IPIDShared {
		fmt.Fprintf(w, "  ipid:         %s (one IPv4 identification counter per router)\n", f.Spec.IPID)
	}
	if f.Spec.Routes == lab.RoutesAll {
		fmt.Fprintf(w, "  routes:       %s (every link and router ID is routed: their addresses answer echo requests)\n", f.Spec.Routes)
	}
	if f.Spec.IPOptions == lab.IPOptionsDrop {
		fmt.Fprintf(w, "  ip options:   %s (IPv4 packets with options are dropped: the alias test hears nothing)\n", f.Spec.IPOptions)
	}
	if f.Spec.HashSeed == lab.HashSeedShared {
		fmt.Fprintf(w, "  hash seed:    %s (one on every router: flows come back over the members they went out by)\n", f.Spec.HashSeed)
	}
	p := f.Spec.Ports[len(f.Spec.Ports)-1]
	if f.Spec.Responder != 0 {
		fmt.Fprintf(w, "  responder:    %s and [%s]:%d, token %s\n", netip.AddrPortFrom(f.Server4, f.Spec.Responder), f.Server6, f.Spec.Responder, lab.TokenPath(f.Spec.Name))
	}
	fmt.Fprintf(w, "try:\n")
	fmt.Fprintf(w, "  ip netns exec %s %s sweep %s:%d\n", f.ClientNS(), prog, f.Server4, p)
	if f.Spec.Responder != 0 {
		fmt.Fprintf(w, "  ip netns exec %s %s sweep %s:%d --responder %s --token-file %s\n", f.ClientNS(), prog, f.Server4, p,
			netip.AddrPortFrom(f.Server4, f.Spec.Responder), lab.TokenPath(f.Spec.Name))
	}
	fmt.Fprintf(w, "  ip netns exec %s %s sweep [%s]:%d\n", f.ClientNS(), prog, f.Server6, p)
	fmt.Fprintf(w, "  %s lab status --name %s\n", prog, f.Spec.Name)
	fmt.Fprintf(w, "  %s lab down --name %s\n", prog, f.Spec.Name)
}

// startServeDaemon re-executes this program as `... lab serve --name NAME`
// in its own session, waits until it listens, and records its pid.
func startServeDaemon(ctx context.Context, cmd *cobra.Command, f *lab.Fabric) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("start server daemon: %w", err)
	}
	// The path from the root to `lab`, e.g. ["lab"], then serve.
	args := strings.Fields(cmd.Parent().CommandPath())[1:]
	args = append(args, "serve", "--name", f.Spec.Name, "--ready-fd", "3")
	logPath := lab.ServeLogPath(f.Spec.Name)
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("start server daemon: %w", err)
	}
	defer logf.Close()
	rd, wr, err := os.Pipe()
	if err != nil {
		return err
	}
	defer rd.Close()
	d := exec.Command(exe, args...)
	d.Stdout, d.Stderr = logf, logf
	d.ExtraFiles = []*os.File{wr} // fd 3
	d.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	d.Dir = "/"
	if err := d.Start(); err != nil {
		wr.Close()
		return fmt.Errorf("start server daemon: %w", err)
	}
	wr.Close()
	pid := d.Process.Pid
	exited := make(chan error, 1)
	go func() { exited <- d.Wait() }() // reaps it if it dies while we wait

	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(rd).ReadString('\n')
		ready <- strings.TrimSpace(line)
	}()
	fail := func(why string) error {
		syscall.Kill(pid, syscall.SIGKILL)
		b, _ := os.ReadFile(logPath)
		return fmt.Errorf("server daemon %s (log %s): %s", why, logPath, strings.TrimSpace(string(b)))
	}
	select {
	case line := <-ready:
		if line != "ready" {
			return fail("did not start")
		}
	case <-time.After(10 * time.Second):
		return fail("not ready after 10s")
	case <-ctx.Done():
		return fail("interrupted")
	}
	select {
	case <-exited:
		return fail("exited")
	default:
	}
	d.Process.Release()
	f.ServerPID, f.ServerLog = pid, logPath
	return f.Save()
}

func newLabDownCommand(s *Streams) *cobra.Command {
	var (
		name string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove a lab: server daemon, namespaces, state",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if all && cmd.Flags().Changed("name") {
				return fmt.Errorf("%w: give --name or --all, not both", lab.ErrBadSpec)
			}
			if err := needRoot(); err != nil {
				return err
			}
			names := []string{name}
			if all {
				var err error
				if names, err = lab.List(); err != nil {
					return err
				}
				if len(names) == 0 {
					fmt.Fprintln(s.Out, "no labs")
					return nil
				}
			} else if err := lab.CheckName(name); err != nil {
				return err
			} else if !labExists(name) {
				fmt.Fprintf(s.Out, "lab %s is not up\n", name)
				return nil
			}
			var errs []error
			for _, n := range names {
				if err := lab.Cleanup(cmd.Context(), n); err != nil {
					errs = append(errs, fmt.Errorf("lab %s: %w", n, err))
					continue
				}
				fmt.Fprintf(s.Out, "lab %s is down\n", n)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&name, "name", "demo", "lab to remove")
	cmd.Flags().BoolVar(&all, "all", false, "remove every lab (state files and esl-* namespaces)")
	return cmd
}

func labExists(name string) bool {
	names, err := lab.List()
	if err != nil {
		return true // let Cleanup try and report
	}
	for _, n := range names {
		if n == name {
			return true
		}
	}
	return false
}

func newLabStatusCommand(s *Streams) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Describe running labs",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			names := []string{name}
			if name != "" {
				if err := lab.CheckName(name); err != nil {
					return err
				}
			} else {
				var err error
				if names, err = lab.List(); err != nil {
					return err
				}
				if len(names) == 0 {
					fmt.Fprintln(s.Out, "no labs")
					return nil
				}
			}
			for _, n := range names {
				f, err := lab.Load(n)
				if err != nil {
					if labExists(n) {
						fmt.Fprintf(s.Out, "lab %s: leftover namespaces without state; remove with: lab down --name %s\n", n, n)
						continue
					}
					return err
				}
				st, err := f.Status(cmd.Context())
				fmt.Fprint(s.Out, st)
				if err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "lab to describe (default: all)")
	return cmd
}

func newLabServeCommand(s *Streams) *cobra.Command {
	var (
		name    string
		readyFD int
	)
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Accept and reset connections on a lab's server ports (started by lab up)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			f, err := lab.Load(name)
			if err != nil {
				return err
			}
			ls, err := lab.Listen(f.ServerNS(), f.Spec.Ports)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT)
			defer stop()
			if f.Spec.Responder != 0 {
				run, err := labResponder(f, s)
				if err != nil {
					return err
				}
				go func() {
					if err := run(ctx); err != nil {
						fmt.Fprintf(s.Err, "lab %s: responder: %v\n", name, err)
					}
				}()
			}
			fmt.Fprintf(s.Err, "lab %s: serving ports %v in %s\n", name, f.Spec.Ports, f.ServerNS())
			if readyFD > 0 {
				ready := os.NewFile(uintptr(readyFD), "ready")
				fmt.Fprintln(ready, "ready")
				ready.Close()
			}
			err = lab.Serve(ctx, ls)
			fmt.Fprintf(s.Err, "lab %s: server stopped\n", name)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "demo", "lab to serve")
	cmd.Flags().IntVar(&readyFD, "ready-fd", 0, "write \"ready\" to this file descriptor once listening")
	cmd.Flags().MarkHidden("ready-fd")
	return cmd
}

// labResponder opens a responder's sockets in the lab's server namespace
// (both families, listening on the server's addresses) and returns what
// runs it.
func labResponder(f *lab.Fabric, s *Streams) (func(context.Context) error, error) {
	token, err := responder.LoadToken(lab.TokenPath(f.Spec.Name))
	if err != nil {
		return nil, err
	}
	var lns []net.Listener
	var captures []responder.Capture
	err = lab.InNamespace(f.ServerNS(), func() error {
		for _, a := range []netip.Addr{f.Server4, f.Server6} {
			ln, err := net.Listen("tcp", netip.AddrPortFrom(a, f.Spec.Responder).String())
			if err != nil {
				return err
			}
			lns = append(lns, ln)
			c, err := responder.OpenCapture(a.Is6())
			if err != nil {
				return err
			}
			captures = append(captures, c)
		}
		return nil
	})
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		for _, c := range captures {
			c.Close()
		}
		return nil, fmt.Errorf("responder in %s: %w", f.ServerNS(), err)
	}
	// Reverse probes leave from the server namespace too; the goroutine
	// that opens them runs on whatever thread, so it enters it.
	openReverse := func(local netip.AddrPort, peer netip.Addr) (responder.ReverseProber, error) {
		return inNamespace(f.ServerNS(), func() (responder.ReverseProber, error) { return responder.OpenReverse(local, peer) })
	}
	// So do its route lookups: a netlink socket asks the namespace it
	// was opened in.
	firstHop := func(ctx context.Context, q route.Query) (route.Route, error) {
		return inNamespace(f.ServerNS(), func() (route.Route, error) { return route.Lookup(ctx, q) })
	}
	srv, err := responder.NewServer(responder.Config{Token: token, OpenReverse: openReverse, FirstHop: firstHop,
		IsLocal: func(a netip.Addr) bool { return a == f.Server4 || a == f.Server6 },
		Log:     func(line string) { fmt.Fprintf(s.Err, "lab %s: responder: %s\n", f.Spec.Name, line) }})
	if err != nil {
		return nil, err
	}
	return func(ctx context.Context) error {
		g, ctx := errgroup.WithContext(ctx)
		// One server per listener; the captures go with the first.
		for i, ln := range lns {
			var cs []responder.Capture
			if i == 0 {
				cs = captures
			}
			g.Go(func() error { return srv.Serve(ctx, ln, cs...) })
		}
		return g.Wait()
	}, nil
}

func needRoot() error {
	if os.Geteuid() != 0 {
		return errors.New("lab needs root (network namespaces, veths, nftables)")
	}
	return nil
}

// inNamespace is lab.InNamespace for a call with a result.
func inNamespace[T any](ns string, call func() (T, error)) (T, error) {
	var v T
	err := lab.InNamespace(ns, func() (err error) {
		v, err = call()
		return err
	})
	return v, err
}
