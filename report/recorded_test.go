package report

import (
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ecmpscan/ecmpscan/hash"
)

// Traces recorded on lab fabrics (make accuracy with ECMPSCAN_RECORD=DIR):
// real kernels' answers, with what the kernel's oracle says is wrong. They
// pin the diagnosis on evidence that was not made up for a unit test.

// recordedTrace is one file of testdata/recorded (internal/e2e writes it).
type recordedTrace struct {
	Fabric string            `json:"fabric"`
	Want   Direction         `json:"want"`
	At     string            `json:"at"`
	Before string            `json:"before"`
	Nodes  map[string]string `json:"nodes"`
	Trace  json.RawMessage   `json:"trace"`
	// Sample is how the traced flows were picked from a sweep's (sweep
	// --trace); absent when every flow was traced.
	Sample *struct{ Fail, OK float64 } `json:"sample"`
}

// knownMisses are the recorded fabrics whose one-ended diagnosis is known
// to be wrong or unknown, and why. The test fails when one of them comes
// out right, so the list cannot go stale.
var knownMisses = map[string]string{
	// Seed 81818, never drawn, measured with both alias tests before it
	// was read: 98/100, 1 unknown, 1 wrong, 25/26. Unknown: an IPv6
	// forward blackhole at q2 of two behind a silent r1, no rate limit
	// (the rate-limit test drained nothing and stopped). Wrong: an IPv6
	// return blackhole at p2 of ten, rate-limited, called forward; a link
	// dead both ways behind a silent p3 named after r1.
	"w10x0-s944326903-inbound-flow-blackhole-ret-p2-ratelimit1000-routes-all-v6":         "forward, want return (5.4 nats)",
	"w2x2-s1740599276-outgoing-flow-blackhole-fwd-q2-ratelimit0-silent-r1-v6":            "unknown, 2.1 nats",
	"w4x5-s2574309827-inbound-fixed-link-drop-p3-q2-silent-p3-ipid-shared-ratelimit1000": "first suspect r1, want the link p3-q2",
	// Seed 71717, never drawn, with half the IPv4 fabrics' routers dropping
	// packets with IP options (--ip-options drop, -ipopt-drop), measured
	// before the rate-limit alias test: 97/100, 2 unknown, 1 wrong, 26/26;
	// every miss rate-limited (53/53 without a limit). Unknown: IPv6, an
	// unseen member at TTL 4 behind a silent r2 or a return fault (no two
	// addresses at the TTLs in question: nothing for an alias test), and a
	// forward blackhole at q1 of four or a return member. Wrong: a return
	// blackhole at p1 of six called forward.
	"w2x4-s1500530707-outgoing-flow-drop-synack-p1-silent-r2-ratelimit1000-routes-all-v6": "unknown, 2.4 nats",
	"w4x4-s3278733058-outgoing-flow-blackhole-fwd-q1-ratelimit1000-v6":                    "unknown, 3.2 nats",
	"w6x3-s4074042658-inbound-flow-blackhole-ret-p1-ratelimit1000-ipopt-drop":             "forward, want return (7.8 nats)",
	// Seed 50505 again with every fabric's links routed (--routes all,
	// -routes-all): 95/100, 3 unknown, 2 wrong, 29/31. The one-tier tie
	// without a rate limit (a link dead toward the client into p1 of four)
	// is right now: the alias test found r2's three addresses one router's.
	// The rate-limited fabrics answer differently from run to run; the
	// alias test ran on none of them (the unknown ones are IPv6).
	"w11x0-s3811856003-outgoing-flow-blackhole-ret-p9-silent-r2-ipid-shared-ratelimit1000-routes-all":         "forward, want return (4.7 nats)",
	"w2x0-s3661133502-inbound-fixed-link-drop-r1-p1-ratelimit1000-silent-r1-routes-all-v6":                    "unknown, 0.1 nats",
	"w3x3-s227273151-outgoing-fixed-link-drop-p2-q2-silent-q3-ipid-shared-ratelimit1000-silent-r1-routes-all": "return, want forward (41 nats)",
	"w8x0-s2986532358-outgoing-flow-link-oneway-r2-p2-ratelimit1000-routes-all-v6":                            "unknown, 0.8 nats",
	"w9x0-s1450258975-inbound-flow-blackhole-ret-p8-ratelimit1000-silent-r1-routes-all-v6":                    "unknown, 4.1 nats, short of 100 to 1",
	// Seed 61616, never drawn, measured with the alias test and half the
	// fabrics routing their links before it was read: 96/100, 1 unknown, 3
	// wrong, every miss rate-limited (48/48 without a rate limit), 37/38.
	// The alias test ran once (the unknown: two router IDs, no group).
	// Wrong: a link dead both ways called return, a return blackhole at q2
	// of two called forward, and an IPv6 link dead toward the client into
	// p1 of six (no alias test in IPv6) called forward.
	"w2x2-s3203918399-router-id-fixed-link-drop-p2-q1-ipid-shared-ratelimit1000-silent-r1-routes-all": "return, want forward (30 nats)",
	"w2x2-s3779888267-router-id-flow-blackhole-ret-q2-ratelimit1000-v6":                               "forward, want return (19 nats)",
	"w2x4-s3872088670-router-id-fixed-blackhole-ret-p1-ratelimit1000-silent-r1-routes-all":            "unknown, 0.8 nats",
	"w6x0-s3258823506-inbound-flow-link-oneway-r2-p1-silent-p2-ratelimit1000-routes-all-v6":           "forward, want return (5.4 nats)",
	// Seed 51515, 60 fabrics never drawn, every one rate-limited, measured
	// the same way right after: 57/60, 3 unknown, none wrong, 22/22;
	// offline the code before gives the same. Unknown, each short of 100
	// to 1: a return blackhole at p13 of 14, a link dead toward the client
	// into p6 of 16, and a forward blackhole at q4 of four behind a silent
	// r1.
	"w14x0-s1638355047-inbound-flow-blackhole-ret-p13-ratelimit1000-v6":           "unknown, 2.0 nats, short of 100 to 1",
	"w16x0-s3750752853-inbound-flow-link-oneway-r2-p6-ratelimit1000-v6":           "unknown, 2.8 nats, short of 100 to 1",
	"w4x4-s1527218366-outgoing-fixed-blackhole-fwd-q4-ratelimit1000-silent-r1-v6": "unknown, 2.9 nats, short of 100 to 1",
	// Seed 50505, never drawn, measured with a flow silent at a
	// rate-limited TTL crossing each router there in its share
	// (maybeCross) before it was read: 95/100, 5 unknown, none wrong,
	// 31/31; offline the code before gives the same. Unknown: links dead
	// toward the client into a p of a one-tier fabric (three, one of them
	// without a rate limit, at 1.4 nats) and return blackholes at p8 of 9
	// and p9 of 11, rate-limited.
	"w11x0-s2696732435-inbound-flow-link-oneway-r2-p6-silent-p11-ratelimit1000-v6":         "unknown, 2.7 nats, short of 100 to 1",
	"w11x0-s3811856003-outgoing-flow-blackhole-ret-p9-silent-r2-ipid-shared-ratelimit1000": "unknown, 3.5 nats, short of 100 to 1",
	"w4x0-s1864874632-outgoing-flow-link-oneway-r2-p1-ratelimit0":                          "unknown, 1.4 nats",
	"w8x0-s2986532358-outgoing-flow-link-oneway-r2-p2-ratelimit1000-v6":                    "unknown, 1.6 nats",
	"w9x0-s1450258975-inbound-flow-blackhole-ret-p8-ratelimit1000-silent-r1-v6":            "unknown, 4.1 nats, short of 100 to 1",
	// Misses since a flow silent at a rate-limited TTL crosses each router
	// there in its share (maybeCross), where it crossed none: a fault
	// after a router no longer leaves to a return fault the failing flows
	// whose hop there a rate limit silenced. On the corpus before seed
	// 50505 that turned 13 misses right (8 unknown, 3 wrong directions, 2
	// wrong first suspects) and 3 wrong directions unknown, and these 13
	// right ones unknown (8) or wrong (5): most of them links dead both
	// ways that a pair had called right at 5 to 10 nats. The pair is
	// fitted by hard EM, each flow going to the likelier half, and a flow
	// that crossed the forward half's router only in its share goes to the
	// return half, which exposes every flow in full. With each flow split
	// between the halves by its odds (soft EM) the corpus gains 6 right and
	// loses 3 wrong, but the 460 traces of the five latest fresh draws
	// lose 4 right and gain 1 wrong: not taken.
	"w2x0-s3224739423-router-id-flow-link-drop-r1-p2-ipid-shared-ratelimit1000-silent-r1":                 "forward, first suspect p1 (was right, 10 nats)",
	"w2x0-s937075759-outgoing-flow-link-oneway-r2-p2-silent-p2-ipid-shared-ratelimit1000-silent-r1":       "unknown, 1.9 nats (was right, 9.6)",
	"w2x3-s1498706903-router-id-flow-link-drop-p1-q2-ipid-shared-ratelimit1000":                           "return, want forward, 15 nats (was right, 5.0)",
	"w2x3-s242197959-outgoing-flow-link-drop-p1-q1-ipid-shared-ratelimit1000":                             "unknown, 4.4 nats (was right, 6.3)",
	"w2x4-s1140487611-router-id-fixed-link-drop-p1-q2-ipid-shared-ratelimit1000":                          "return, want forward, 30 nats (was right, 5.2)",
	"w2x5-s2547353686-router-id-flow-link-drop-p1-q2-silent-q5-ratelimit1000":                             "unknown, 2.5 nats (was right, 9.9)",
	"w2x5-s981484276-inbound-flow-link-drop-p1-q2-silent-q1-ratelimit1000-v6":                             "unknown, 3.6 nats (was right, 4.8)",
	"w3x2-s3055102031-outgoing-flow-link-oneway-q1-p3-silent-r2-ipid-shared-ratelimit1000-silent-r1":      "unknown, 2.8 nats (was right, 27)",
	"w3x2-s3055102031-outgoing-flow-link-oneway-q1-p3-silent-r2-ipid-shared-ratelimit1000-silent-r1-wide": "forward, want return, 7 nats (was right, 89)",
	"w3x3-s3076603362-outgoing-fixed-link-drop-p2-q1-silent-r2-ratelimit1000-v6":                          "return, want forward, 75 nats (was right, 5.4)",
	"w3x4-s3534612859-inbound-flow-link-drop-p3-q4-silent-q1-ipid-shared-ratelimit1000":                   "unknown, 4.2 nats (was right, 9.3)",
	"w3x6-s1597859223-inbound-fixed-link-drop-p2-q1-silent-q6-ipid-shared-ratelimit1000":                  "unknown, 2.5 nats (was right, 6.7)",
	"w4x4-s2730657499-inbound-flow-link-drop-p1-q3-ipid-shared-ratelimit1000":                             "unknown, 3.2 nats (was right, 5.1)",
	// Seed 90909, never drawn, measured the same way: 94/100, 4 unknown,
	// 2 wrong, both rate-limited, 29/31. Three of the unknown have no
	// rate limit: the one-tier tie of a link dead toward the client behind
	// a silent r1, and a SYN-ACK dropper behind a silent r2.
	"w2x0-s791184487-router-id-fixed-link-drop-r1-p2-ipid-shared-ratelimit1000":   "return, want forward (19 nats)",
	"w8x0-s4031548011-router-id-fixed-blackhole-ret-p4-ipid-shared-ratelimit1000": "forward, want return (11 nats)",
	"w3x2-s3726736152-inbound-flow-drop-synack-q1-silent-r2-ratelimit0":           "unknown, 1.3 nats",
	"w5x0-s2340565661-outgoing-flow-link-oneway-r2-p4-ratelimit0-silent-r1-v6":    "unknown, 0.7 nats",
	"w6x0-s2087767852-inbound-flow-link-oneway-r2-p4-ratelimit0-silent-r1-v6":     "unknown, 1.1 nats",
	"w6x2-s2328197831-router-id-flow-blackhole-fwd-q1-silent-q2-ratelimit1000-v6": "unknown, 2.3 nats, short of 100 to 1",
	// Seed 80808, never drawn, measured with the pair's chances multiplied
	// before it was read: 90/100, 4 unknown, 6 wrong, 36/40. Every wrong
	// direction is rate-limited, five with a stage two wide: three links dead
	// both ways called return, two return blackholes called forward, a
	// SYN-ACK dropper called forward by a pair whose forward half is
	// flows no hop answered (unknown with the code before).
	"w2x0-s3020307262-outgoing-fixed-link-drop-r1-p2-ratelimit1000-silent-r1":                       "return, want forward (45 nats)",
	"w2x2-s2812538399-inbound-fixed-link-drop-p1-q1-ipid-shared-ratelimit1000-silent-r1":            "return, want forward (4.9 nats)",
	"w2x2-s3603702550-router-id-fixed-link-drop-p2-q1-ratelimit1000":                                "return, want forward (19 nats)",
	"w2x0-s1771851579-outgoing-flow-blackhole-ret-p2-ipid-shared-ratelimit1000":                     "forward, want return (12 nats)",
	"w5x2-s2930312422-router-id-flow-blackhole-ret-q1-ratelimit1000":                                "forward, want return (23 nats)",
	"w3x0-s2198124238-outgoing-flow-drop-synack-p2-silent-p3-ratelimit1000-silent-r1":               "forward, want return (6.2 nats; unknown before)",
	"w10x0-s4261391708-outgoing-flow-link-oneway-r2-p7-silent-p4-ratelimit0-silent-r1-v6":           "unknown, 1.9 nats",
	"w4x2-s3619687152-outgoing-fixed-drop-synack-q2-silent-r2-ratelimit0":                           "unknown, 0.5 nats",
	"w2x4-s120096738-inbound-fixed-blackhole-fwd-q3-silent-r2-ratelimit1000":                        "unknown, 4.5 nats, short of 100 to 1",
	"w2x5-s3589087919-inbound-fixed-blackhole-fwd-p1-silent-p2-ipid-shared-ratelimit1000-silent-r1": "unknown, 2.1 nats",
	// Misses since a pair's healthy flows survive both halves, the chances
	// multiplied (they were subtracted, which made a pair whose shares add
	// up to more than one impossible), a link dead both ways takes its
	// forward half's share from the stage it leads into, and shares are
	// weighed flow by flow. That turned 11 misses right (3 links dead both
	// ways called return among them) and five wrong: the margins they had
	// over a pair (15 to 70 nats) were the subtraction's. Three came right
	// again once a flow silent at a rate-limited TTL crossed each router
	// there in its share (maybeCross); these two are left: a link dead
	// both ways behind a silent p4, an unseen member or a return link at
	// 2 to 1, and a SYN-ACK dropper whose failing flows went silent behind
	// p5.
	"w6x2-s859680139-router-id-flow-drop-synack-q1-ratelimit1000-v6":           "forward, want return (was right, 70 nats)",
	"w9x0-s3792816145-inbound-flow-link-drop-r1-p6-silent-p4-ratelimit1000-v6": "unknown (was right, 4 nats)",
	// Right at 10 to 1, unknown since a direction needs 100 to 1 where
	// routers rate-limit their errors (decisiveWhereRateLimited): about
	// as many as the wrong ones it turned unknown.
	"w12x0-s1201045531-outgoing-flow-link-oneway-r2-p4-silent-p5-ratelimit1000-v6":       "unknown where routers rate-limit (was: return; margin 4.3)",
	"w12x0-s4037502122-inbound-flow-blackhole-ret-p9-silent-p1-ratelimit1000-v6-unseen":  "unknown where routers rate-limit (was: return; margin 3.5)",
	"w14x0-s1708473482-inbound-fixed-link-oneway-r2-p4-ratelimit1000":                    "unknown where routers rate-limit (was: return; margin 2.3)",
	"w2x2-s1375683567-outgoing-flow-link-drop-p1-q2-ipid-shared-ratelimit1000-silent-r1": "unknown where routers rate-limit (was: forward; margin 2.9)",
	"w2x3-s3839678790-router-id-fixed-blackhole-fwd-q2-ratelimit1000":                    "unknown where routers rate-limit (was: forward; margin 3.7)",
	"w2x5-s465155490-outgoing-flow-link-drop-p2-q4-ratelimit1000":                        "unknown where routers rate-limit (was: forward; margin 4.0)",
	"w3x3-s2343777149-router-id-flow-blackhole-ret-q2-ratelimit1000-silent-r1-v6":        "unknown where routers rate-limit (was: return; margin 3.9)",
	"w3x5-s1964514730-inbound-flow-blackhole-fwd-q5-silent-r2-ratelimit1000":             "unknown where routers rate-limit (was: forward; margin 3.6)",
	"w3x5-s3435218431-inbound-fixed-link-drop-p2-q4-ratelimit1000-v6":                    "unknown where routers rate-limit (was: forward; margin 2.7)",
	"w3x6-s2749461182-inbound-fixed-link-drop-p2-q3-ratelimit1000-silent-r1-unseen":      "unknown where routers rate-limit (was: forward; margin 2.8)",
	"w4x5-s3069987758-inbound-fixed-link-drop-p1-q3-ratelimit1000-silent-r1-v6":          "unknown where routers rate-limit (was: forward; margin 4.2)",
	"w5x3-s1625453187-router-id-flow-blackhole-ret-q3-ipid-shared-ratelimit1000":         "unknown where routers rate-limit (was: return; margin 3.3)",
	"w5x5-s513334155-outgoing-flow-link-drop-p2-q3-ratelimit1000-v6":                     "unknown where routers rate-limit (was: forward; margin 2.7)",
	"w6x3-s2386528702-router-id-flow-blackhole-fwd-q3-ratelimit1000-v6":                  "unknown where routers rate-limit (was: forward; margin 4.2)",
	"w6x3-s2860612011-outgoing-flow-link-drop-p1-q3-silent-r2-ratelimit1000-v6":          "unknown where routers rate-limit (was: forward; margin 3.3)",
	"w6x4-s2168424114-outgoing-flow-blackhole-fwd-q1-ratelimit1000":                      "unknown where routers rate-limit (was: forward; margin 4.4)",
	"w7x0-s2535555351-outgoing-flow-link-drop-r1-p7-silent-r2-ratelimit1000-v6":          "unknown where routers rate-limit (was: forward; margin 3.3)",
	// A silent return member against an unseen forward member beside the
	// last router's per-link addresses: the silence it explains is worth
	// 10 to 1, just short of a decision.
	"demo-w4x3-s5-blackhole-ret-q2-trace":             "unknown, 9.7 to 1",
	"w4x2-s2377445724-outgoing-flow-blackhole-ret-q2": "unknown, 5 to 1",
	// A link dead toward the client against an unseen forward member: one
	// end cannot tell them apart (readings.go).
	"w10x0-s2781412125-outgoing-flow-link-oneway-r2-p1":  "unknown",
	"w6x0-s3881208320-outgoing-flow-link-oneway-r2-p2":   "unknown",
	"w6x0-s703735440-outgoing-flow-link-oneway-r2-p1":    "unknown",
	"w7x0-s992390075-outgoing-flow-link-oneway-r2-p3-v6": "unknown",
	"w4x0-s4274395608-inbound-flow-link-oneway-r2-p4-v6": "unknown",
	// Four second-tier addresses behind four first-tier members, one
	// address each: an unseen fifth, or one router with a link dead
	// toward the client; the share (0.27) sits between a fifth and a
	// quarter.
	"w4x5-s95048121-router-id-fixed-blackhole-fwd-q5": "unknown",
	// A link dead both ways: most failing flows lost on the way back, the
	// few lost on the way out not enough to name a second fault (10 to 1
	// over the return fault alone).
	"w14x0-s516578998-inbound-fixed-link-drop-r1-p14-v6": "return, want forward",
	// Few failing flows: one of 64 (a link into one member of 13), or ten
	// of which three happen to die behind one member (taken for a second,
	// forward fault).
	"w13x0-s2536948187-router-id-flow-link-oneway-r2-p1":  "forward, want return",
	"w3x4-s1602739534-outgoing-flow-link-oneway-q3-p1-v6": "forward, want return",
	// A silent return member against an unseen forward member, again.
	"w3x5-s2359592942-outgoing-flow-blackhole-ret-q4": "unknown",
	// Seed 9001, measured before it was recorded: two links dead toward
	// the client, and 2 second-tier addresses behind 3 first-tier
	// members, one each (TestDiagnoseForwardBlackholedSecondTier's 3x3),
	// unknown; a link dead both ways called return.
	"w2x0-s3148930766-inbound-flow-link-oneway-r2-p2-v6": "unknown",
	"w7x0-s274263942-outgoing-flow-link-oneway-r2-p7":    "unknown",
	"w3x3-s351869265-router-id-flow-blackhole-fwd-q3-v6": "unknown",
	"w5x4-s554145599-outgoing-flow-link-drop-p5-q4":      "return, want forward",
	// Seed 2027, silent routers drawn at every tier: two failing flows of
	// 64; a link dead toward the client whose lost errors make healthy
	// flows silent too, taken for a second, forward fault; a silent return
	// member against an unseen member behind a silent hop.
	"w13x0-s1052934722-router-id-flow-blackhole-ret-p10-silent-r2": "forward, want return",
	"w2x3-s2235383088-outgoing-flow-link-oneway-q1-p1":             "forward, want return",
	"w4x2-s3763879963-router-id-flow-blackhole-ret-q1":             "unknown",
	// Seed 2026 of the draw with silent routers at every tier (make
	// accuracy's default now): links dead toward the client, the tie
	// above; a SYN-ACK dropper behind a silent last router, whose silence
	// an unseen member beside it explains as well; a silent return member
	// whose fixed ICMP path hides it, taken for an unseen member beside
	// the silent last router; a link dead both ways, return; an unseen
	// member behind a silent p among five q (the share, 0.12, fits a
	// link into the silent p better than a fifth).
	"w10x0-s417407910-outgoing-flow-link-oneway-r2-p1":            "unknown",
	"w11x0-s2355846545-inbound-flow-link-oneway-r2-p7-v6":         "unknown",
	"w9x0-s482601944-outgoing-flow-link-oneway-r2-p7":             "unknown",
	"w5x2-s2834777052-outgoing-fixed-drop-synack-q2-silent-r2":    "unknown",
	"w2x4-s738947519-inbound-fixed-blackhole-ret-p2-silent-r2":    "unknown",
	"w3x5-s3674725687-router-id-fixed-blackhole-fwd-q3-silent-p3": "return, want forward",
	// Four of the above again, with routers that share an IP ID counter
	// each (seed 2026, ECMPSCAN_ACCURACY_IPID=shared): the counters group
	// nothing that decides them. A silent r2 answers nothing, and router
	// IDs are one address per router already. (The links dead toward the
	// client above are right with shared counters: r2's addresses are
	// then one router's.)
	"w2x4-s738947519-inbound-fixed-blackhole-ret-p2-silent-r2-ipid-shared":    "unknown",
	"w3x5-s3674725687-router-id-fixed-blackhole-fwd-q3-silent-p3-ipid-shared": "return, want forward",
	"w5x2-s2834777052-outgoing-fixed-drop-synack-q2-silent-r2-ipid-shared":    "unknown",
	// Seed 2026's fabrics with routers that rate-limit their ICMP errors
	// as Linux does by default (its first 40 with
	// ECMPSCAN_ACCURACY_RATELIMIT=1000, and the 61 of the draw that gives
	// half the fabrics the limit, --patience 10s): the tie of links dead
	// toward the client above (the third became unknown once probing again
	// counted as evidence: its twin without a limit is unknown too); links
	// dead both ways called return, as above; and the two silent-router
	// cases above again (2x4, unknown; 3x5, now unknown, where it was
	// return).
	"w10x0-s417407910-outgoing-flow-link-oneway-r2-p1-ratelimit1000":                        "unknown",
	"w9x0-s482601944-outgoing-flow-link-oneway-r2-p7-ratelimit1000":                         "unknown",
	"w6x0-s3881208320-outgoing-flow-link-oneway-r2-p2-ratelimit1000":                        "unknown",
	"w2x4-s738947519-inbound-fixed-blackhole-ret-p2-silent-r2-ipid-shared-ratelimit1000":    "unknown",
	"w3x5-s3674725687-router-id-fixed-blackhole-fwd-q3-silent-p3-ipid-shared-ratelimit1000": "forward, first suspect r1",
	"w3x4-s2508799370-outgoing-fixed-link-drop-p2-q3-ratelimit1000":                         "return, want forward",
	// Seed 31337, a draw none of the diagnosis was developed on (with its
	// rate-limit and IP ID draws; before silent first hops were drawn),
	// measured before it was recorded: every miss is on routers that
	// rate-limit. Silent return members and a silent r2, unknown; links
	// dead toward the client taken for a forward fault that fits the
	// holes probed again and still silent; links dead both ways, return.
	"w16x0-s565155470-router-id-flow-link-drop-r1-p2-ratelimit1000-v6":                     "return, want forward",
	"w2x0-s4101191182-outgoing-flow-blackhole-ret-p2-ratelimit1000-v6":                     "unknown",
	"w2x2-s1283079182-outgoing-flow-blackhole-ret-q1-silent-r2-ratelimit1000":              "unknown",
	"w2x2-s2859559554-outgoing-fixed-blackhole-ret-p1-silent-r2-ratelimit1000":             "unknown",
	"w2x6-s4126684507-inbound-fixed-blackhole-ret-p1-ratelimit1000-v6":                     "unknown",
	"w3x2-s1519265999-router-id-flow-link-drop-p3-q2-silent-q1-ipid-shared-ratelimit1000":  "return, want forward",
	"w3x5-s1424497974-outgoing-flow-link-oneway-q5-p3-ratelimit1000":                       "unknown where routers rate-limit (was: forward, want return; margin 3.9)",
	"w7x0-s3750439122-outgoing-flow-blackhole-ret-p1-silent-p5-ratelimit1000-v6":           "unknown",
	"w8x0-s3560056959-outgoing-flow-link-oneway-r2-p5-silent-p5-ipid-shared-ratelimit1000": "unknown where routers rate-limit (was: forward, want return; margin 2.3)",
	// Seed 2026 once the draw gave a quarter of the fabrics a client
	// gateway that sends no time-exceeded (silent@r1; the 26 recorded
	// with it): two of the silent-r2 cases above again, and a link dead
	// toward the client, rate-limited, whose failing flows' answering
	// forward hops a second, forward fault fits (its twin with r1
	// answering is right).
	"w2x4-s738947519-inbound-fixed-blackhole-ret-p2-silent-r2-ipid-shared-ratelimit1000-silent-r1": "unknown",
	"w5x2-s2834777052-outgoing-fixed-drop-synack-q2-silent-r2-ratelimit0-silent-r1":                "unknown",
	"w5x2-s2053344878-router-id-flow-link-oneway-q2-p4-ratelimit1000-silent-r1":                    "unknown where routers rate-limit (was: forward, want return; margin 2.6)",
	// Seed 4242 of the current draw (its fabrics without rate limits and
	// silent r1 were recorded in an earlier draw), measured before it was
	// read: links dead toward the client against an unseen member, and a
	// 2x2 whose unseen q2 a link dead toward the client into a p explains
	// as well, unknown; a SYN-ACK dropper behind rate-limited routers,
	// and an unseen member behind a silent r1 and r2, unknown; a forward
	// blackhole behind a silent q1, forward, but its first suspect an
	// unseen member behind no named router, not q2.
	"w11x0-s4131877993-inbound-flow-link-oneway-r2-p11-silent-r2-ratelimit0-v6":                    "unknown",
	"w14x0-s589066316-inbound-flow-link-oneway-r2-p5-ratelimit0-silent-r1-v6":                      "unknown",
	"w16x0-s794912291-inbound-fixed-drop-synack-p8-ipid-shared-ratelimit1000":                      "unknown",
	"w2x2-s2232937280-inbound-flow-blackhole-fwd-q2-ratelimit0":                                    "unknown",
	"w4x2-s2603997897-outgoing-fixed-blackhole-fwd-q2-silent-q1-ratelimit0-v6":                     "unknown",
	"w6x6-s4173227039-inbound-flow-blackhole-fwd-q6-silent-r2-ipid-shared-ratelimit1000-silent-r1": "unknown",
	// Seed 8675309, never drawn before, measured before it was read:
	// links dead toward the client at the last router, and a return
	// blackhole among fifteen, unknown; five links dead both ways called
	// return (three rate-limited with few flows lost on the way out, two
	// with the link's router silent or behind a silent r1); and one whose
	// first suspect is r1.
	"w14x0-s2315580315-inbound-flow-link-oneway-r2-p12-ipid-shared-ratelimit1000":        "unknown",
	"w15x0-s732297576-router-id-flow-blackhole-ret-p3-ratelimit0":                        "unknown",
	"w3x0-s3038094515-outgoing-flow-link-oneway-r2-p3-ratelimit1000-v6":                  "unknown",
	"w3x0-s871483340-router-id-flow-link-oneway-r2-p2-ratelimit0-silent-r1":              "unknown",
	"w16x0-s2182046965-inbound-flow-link-drop-r1-p1-silent-p8-ratelimit0-v6":             "return, want forward",
	"w4x0-s2285585303-inbound-fixed-link-drop-r1-p2-silent-p1-ipid-shared-ratelimit1000": "unknown where routers rate-limit (was: return, want forward; margin 4.6)",
	"w4x5-s2865553107-outgoing-fixed-link-drop-p4-q1-ratelimit1000-v6":                   "return, want forward",
	"w5x4-s533957927-router-id-flow-link-drop-p3-q3-silent-p3-ipid-shared-ratelimit1000": "forward, first suspect r1",
	"w6x3-s2664792735-inbound-flow-link-drop-p4-q3-ratelimit1000-silent-r1-v6":           "return, want forward",
	"w4x4-s804905387-router-id-fixed-link-drop-p3-q2-silent-q3-ratelimit1000-v6":         "return, want forward",
	// Seed 20261202, never drawn before, measured before it was read: a
	// return blackhole among fifteen (twice), a link dead toward the
	// client at the last router, a SYN-ACK dropper behind a silent r2, and
	// two return blackholes in two tiers, unknown; two links dead toward
	// the client called forward by a partial fault right after one
	// first-tier router, whose next hop is the one r2 (a parallel-link or
	// LAG member would do that; the lab has none); a return blackhole
	// behind rate-limited routers called forward, its failing flows'
	// hops answering more often than healthy flows' because they were
	// probed again; a link dead both ways called return.
	"w15x0-s1852324474-inbound-fixed-blackhole-ret-p13-ratelimit1000":                             "unknown",
	"w15x0-s4231929362-inbound-flow-blackhole-ret-p11-ratelimit1000-v6":                           "unknown",
	"w15x0-s2270755978-outgoing-flow-link-oneway-r2-p11-ratelimit1000":                            "unknown",
	"w2x0-s639765016-outgoing-flow-drop-synack-p2-silent-r2-ratelimit0-v6":                        "unknown",
	"w4x2-s572464272-outgoing-flow-blackhole-ret-q2-ratelimit0":                                   "unknown",
	"w5x4-s97809135-outgoing-flow-blackhole-ret-p5-silent-q2-ipid-shared-ratelimit1000-silent-r1": "unknown",
	"w14x0-s3425304678-outgoing-flow-link-oneway-r2-p10-silent-p8-ratelimit1000":                  "unknown where routers rate-limit (was: forward, want return; margin 0.1)",
	"w2x3-s887575074-router-id-fixed-blackhole-ret-q1-ratelimit1000":                              "forward, want return",
	"w5x6-s528990163-outgoing-flow-link-drop-p5-q2-ipid-shared-ratelimit1000":                     "return, want forward",
	// Seed 20261202 again, traced as trace does now (-wide: 256 flows
	// classified, the failing ones traced first, up to 32 of each state,
	// weighed back). Two of the ties above, unknown; a link dead toward
	// the client behind a silent r2 and a silent r1, and a return
	// blackhole at q6 of a 5x6 whose failing flows went out through the
	// silent q6 more often than chance would have them (10 of 32, where
	// 1 in 6): five of them behind p2 fit a forward link after it, a
	// second fault, better than their silences do.
	"w2x0-s639765016-outgoing-flow-drop-synack-p2-silent-r2-ratelimit0-v6-wide":               "unknown",
	"w4x2-s572464272-outgoing-flow-blackhole-ret-q2-ratelimit0-wide":                          "unknown",
	"w12x0-s4209541790-inbound-flow-link-oneway-r2-p6-silent-r2-ratelimit1000-silent-r1-wide": "forward, want return",
	"w5x6-s4009132656-inbound-flow-blackhole-ret-q6-ratelimit0-wide":                          "forward, want return",
	// Seed 5150, never drawn before, measured on the lab with trace's
	// picks and the likelihood that counts each traced flow once, before
	// it was read: every miss is rate-limited. Links dead toward the
	// client called forward (three), a SYN-ACK dropper behind a silent
	// r2 called forward, a link dead both ways called return; an unseen
	// 2x2 member behind a silent r2 and a link dead both ways behind a
	// silent r1, unknown; a link dead both ways behind a silent r1 and p2
	// whose first suspect is after no named router.
	"w2x3-s3631177734-router-id-fixed-link-oneway-q1-p2-ratelimit1000-v6":                  "forward, want return",
	"w14x0-s315194731-router-id-fixed-drop-synack-p13-silent-r2-ipid-shared-ratelimit1000": "unknown where routers rate-limit (was: forward, want return; margin 3.5)",
	"w2x2-s802975722-router-id-flow-link-drop-p1-q2-ratelimit1000-v6":                      "return, want forward",
	"w2x2-s2830820507-inbound-fixed-blackhole-fwd-q2-silent-r2-ratelimit1000-v6":           "unknown",
	"w3x0-s3223396158-outgoing-flow-link-drop-r1-p3-ratelimit1000-silent-r1":               "unknown",
	// Seed 6006, never drawn before, measured on the lab with the same
	// code before it was read: three return blackholes and a link dead
	// toward the client called forward (one of them without a rate
	// limit, behind a silent q2, at no margin over another forward
	// place), a return blackhole behind a silent r2 unknown, and a link
	// dead both ways behind a silent r1 called return. (The one behind a
	// silent q2 came right when a stage silent for every flow came to
	// hold a return member of two, silentStageShares.)
	"w12x0-s3049861695-inbound-flow-blackhole-ret-p6-ipid-shared-ratelimit1000-silent-r1":   "forward, want return",
	"w15x0-s2374266567-outgoing-fixed-blackhole-ret-p14-ipid-shared-ratelimit1000":          "unknown where routers rate-limit (was: forward, want return; margin 3.7)",
	"w16x0-s169791970-outgoing-fixed-link-oneway-r2-p10-silent-r2-ratelimit1000":            "forward, want return",
	"w2x4-s2942384619-router-id-fixed-blackhole-ret-p2-silent-r2-ipid-shared-ratelimit1000": "unknown",
	"w3x0-s1081705007-inbound-fixed-link-drop-r1-p3-ipid-shared-ratelimit1000-silent-r1":    "return, want forward",
	// Seed 5150 again (-fill) once healthy flows filled the room the
	// failing ones leave: the one-tier tie at the last router, an unseen
	// 2x2 member behind a silent r2 and a 2x2 link dead both ways,
	// unknown; the link dead both ways behind a silent r1 and p2 again,
	// its first suspect after no named router.
	"w16x0-s2408438753-outgoing-flow-link-oneway-r2-p2-ratelimit0-v6-fill":                               "unknown",
	"w2x2-s2830820507-inbound-fixed-blackhole-fwd-q2-silent-r2-ratelimit1000-v6-fill":                    "unknown",
	"w2x2-s802975722-router-id-flow-link-drop-p1-q2-ratelimit1000-v6-fill":                               "unknown",
	"w2x5-s1229933727-outgoing-fixed-link-drop-p1-q3-silent-p2-ipid-shared-ratelimit1000-silent-r1-fill": "forward, first suspect unnamed",
	// Seed 7070, never drawn before, measured with the code before the
	// second look: five return faults called forward (one without a rate
	// limit: a link dead toward p10, five failing flows through p7, a
	// forward fault after p7 plus the return one), three unknown, a link
	// dead both ways called return (right since a flow silent at TTL 1
	// crosses the one first hop that answers there).
	"w2x0-s3778587206-outgoing-flow-link-oneway-r2-p1-ratelimit1000":             "unknown",
	"w2x5-s2834226755-inbound-fixed-drop-synack-q4-ratelimit1000-v6":             "unknown where routers rate-limit (was: forward, want return; margin 3.8)",
	"w2x5-s314946784-inbound-fixed-drop-synack-p2-silent-r2-ratelimit0-v6":       "unknown",
	"w4x4-s729070595-router-id-fixed-blackhole-ret-q2-ipid-shared-ratelimit1000": "unknown where routers rate-limit (was: forward, want return; margin 3.1)",
	"w8x0-s2569437946-inbound-flow-link-oneway-r2-p5-ratelimit1000-v6":           "unknown",
	// Seed 7070 again (-look) with the second look: three of those come
	// out right (the link toward p10, the return blackhole at q2, the link
	// dead both ways), the SYN-ACK dropper behind a silent r1 goes from
	// forward to unknown, the link into p5 of 8 from unknown to forward
	// (at 13 to 1), and a forward blackhole at q1, rate-limited, right
	// before, is called return (at 24 to 1, its look a wider sample of
	// every member).
	"w2x0-s3778587206-outgoing-flow-link-oneway-r2-p1-ratelimit1000-look":                             "unknown",
	"w2x3-s2146623951-inbound-flow-drop-synack-p2-silent-r2-ipid-shared-ratelimit1000-silent-r1-look": "unknown",
	"w2x5-s2834226755-inbound-fixed-drop-synack-q4-ratelimit1000-v6-look":                             "forward, want return",
	"w2x5-s314946784-inbound-fixed-drop-synack-p2-silent-r2-ratelimit0-v6-look":                       "unknown",
	"w6x4-s2168424114-outgoing-flow-blackhole-fwd-q1-ratelimit1000-look":                              "return, want forward",
	"w8x0-s2569437946-inbound-flow-link-oneway-r2-p5-ratelimit1000-v6-look":                           "unknown where routers rate-limit (was: forward, want return; margin 2.6)",
	// Seed 8080, never drawn before, measured with the second look before
	// it was read: every miss rate-limited. Links dead both ways called
	// return (two), a forward blackhole at p2 behind a silent p3 called
	// return at 5 to 1, a link dead toward the client called forward, one
	// behind a silent r1 unknown, and a link dead both ways behind silent
	// r1 and r2 whose first suspect is after no named router. (The forward
	// blackhole came right when a flow silent at TTL 1 came to cross the
	// one first hop that answers there, firstHop.)
	"w2x0-s2147342339-router-id-fixed-link-drop-r1-p1-ipid-shared-ratelimit1000":       "unknown where routers rate-limit (was: return, want forward; margin 4.3)",
	"w3x6-s1978465382-inbound-flow-link-oneway-q3-p2-ratelimit1000":                    "forward, want return",
	"w4x0-s1509130590-outgoing-flow-link-oneway-r2-p1-ratelimit1000-silent-r1-v6":      "unknown",
	"w4x2-s919405774-outgoing-fixed-link-drop-p2-q1-silent-r2-ratelimit1000-silent-r1": "unknown where routers rate-limit (was: forward, first suspect unnamed; margin 4.6)",
	// Seed 9090, never drawn before, every fabric rate-limited
	// (ECMPSCAN_ACCURACY_RATELIMIT=1000), measured before it was read,
	// and traced again when a TTL's retries came to go on until a whole
	// turn over its holes brings nothing (these are the second traces):
	// a link dead both ways behind a silent p, unknown between an unseen
	// member past the p stage and a link dead toward the client (r2's
	// errors for the flows lost on the way back ride the bad return
	// member too, so both predict the same silence past the p stage; its
	// twin w9x0-s3792816145 came out right once a look at every p that
	// answers, a place every flow seen there crosses, no longer made the
	// few traced flows silent there stand for every untraced flow the
	// rate-limited p's left unanswered); a
	// link dead toward the client, unknown (the tie above); a return
	// blackhole called forward, where 8 of the 31 failing flows crossed
	// one p of 8 and a fault after it at a fitted share of 1/2 pairs with
	// the return path.
	"w3x0-s3499564082-outgoing-flow-link-oneway-r2-p3-ratelimit1000-v6":         "unknown",
	"w4x0-s3122565666-router-id-flow-link-drop-r1-p4-silent-p2-ratelimit1000":   "unknown, want forward",
	"w8x0-s3657554531-inbound-fixed-blackhole-ret-p3-ipid-shared-ratelimit1000": "forward, want return",
	// Seed 10101, never drawn before, measured before it was read: a
	// return fault against an unseen member beside a last router silent
	// for every flow (r2 silent, or answering over the fixed path the bad
	// return member takes), whose width of two fits the share (about a
	// half) as well: unknown, three times, none of them rate-limited;
	// rate-limited, links dead both ways called return (two), a return
	// blackhole behind a silent p called forward, and a link dead both
	// ways whose first suspect is the first hop (right since a flow silent
	// at TTL 1 crosses the one first hop that answers there).
	"w2x5-s1423278500-router-id-fixed-blackhole-ret-p2-ratelimit0":                      "unknown",
	"w2x5-s3045645740-outgoing-flow-drop-synack-p2-silent-r2-ratelimit0-silent-r1-v6":   "unknown",
	"w2x3-s1106154093-inbound-flow-link-oneway-q3-p2-silent-p1-ratelimit0-silent-r1-v6": "unknown",
	"w2x2-s240288010-inbound-flow-link-drop-p1-q2-ratelimit1000":                        "return, want forward",
	"w14x0-s3051674995-inbound-flow-blackhole-ret-p14-silent-p9-ratelimit1000-v6":       "unknown where routers rate-limit (was: forward, want return; margin 4.2)",
	// Seed 11111, never drawn before, measured before it was read (with
	// the retries' whole turn): no direction wrong, four unknown. Three
	// return faults of one tier, routers erring from the outgoing
	// address over the flow's member, against an unseen member past the
	// p stage: r2 shows one address fewer than it has links (the bad
	// link's errors are lost), which by router is a stage of that many
	// routers and an unseen one beside them at about the failing share.
	// A SYN-ACK dropper at q1 against an unseen member beside a silent r2
	// (width two, share about a half). And a link dead both ways, rate-
	// limited, whose forward half is after no named router.
	"w15x0-s2002569126-outgoing-flow-link-oneway-r2-p2-silent-p1-ratelimit1000":            "unknown",
	"w15x0-s3125928335-outgoing-flow-blackhole-ret-p6-ipid-shared-ratelimit1000-silent-r1": "unknown",
	"w5x0-s708090260-outgoing-flow-link-oneway-r2-p3-ratelimit0":                           "unknown",
	"w5x2-s4171435090-inbound-fixed-drop-synack-q1-silent-r2-ratelimit1000":                "unknown",
	// Seed 12121, never drawn before, measured before it was read (with
	// a look's unseen flows weighed as crossing): 96/100, two unknown, two
	// wrong, 36/38 forward suspects. The unknown ones are the ties of a
	// second stage of two against an unseen member beside the last router
	// (share a half either way): a return blackhole at q1 behind a silent
	// r1, and at p2 of two beside a silent r2 (errors on a fixed path, so
	// the answers alone are lost). Wrong: a return blackhole at q2 beside a
	// q1 silent by configuration, called forward (the q stage is silent
	// for every flow, so it had no width to put a return member in; the
	// member beside r2 fits its share of a half: unknown, the same tie,
	// since such a stage holds one of two); a link dead both ways,
	// rate-limited, called return (the few flows lost on the way out not
	// enough for a second fault). And a link dead both ways at r1 whose
	// flows lost on the way out got no answer at any TTL (r1 rate-limited),
	// its forward half at no named router.
	"w2x5-s1419380805-inbound-fixed-blackhole-ret-p2-silent-r2-ipid-shared-ratelimit0": "unknown",
	"w4x2-s1556251884-outgoing-flow-blackhole-ret-q1-ratelimit0-silent-r1":             "unknown",
	"w4x2-s2618388985-outgoing-flow-blackhole-ret-q2-silent-q1-ipid-shared-ratelimit0": "unknown",
	"w3x2-s2648471779-router-id-fixed-link-drop-p3-q1-ratelimit1000-v6":                "return, want forward",
	"w4x0-s1770529059-router-id-flow-link-drop-r1-p1-ratelimit1000-v6":                 "first suspect unnamed",
	// Seed 9090's 60 again (-unseen), every one rate-limited, traced with a
	// look's unseen flows counted and one more patience while unknown:
	// 56/60, one unknown, three wrong, 15/17. Listening longer took a link
	// dead toward the client from unknown to right and left the link dead
	// both ways behind a silent p2 unknown (the tie above). The three
	// wrong were right when traced before: a SYN-ACK dropper beside a
	// silent q1 whose pair with a forward half of three flows after r1
	// beat the answers alone by just the decisive ratio (r1 answered
	// almost nothing); a return blackhole behind a silent r1 and a link
	// dead toward the client beside a silent p6, both called forward. A
	// link dead both ways behind a silent q1 lost its first suspect (the
	// flows the look did not see, weighed as crossing p1, moved its share).
	// The SYN-ACK dropper and the link toward the client came right once a
	// flow silent at TTL 1 crossed the one first hop that answers there.
	"w4x0-s3122565666-router-id-flow-link-drop-r1-p4-silent-p2-ratelimit1000-unseen":     "unknown",
	"w3x3-s2343777149-router-id-flow-blackhole-ret-q2-ratelimit1000-silent-r1-v6-unseen": "unknown where routers rate-limit (was: forward, want return; margin 3.0)",
	// Seed 13579, never drawn before, measured with this day's changes
	// before it was read: 95/100, one unknown, four wrong, 26/28; with the
	// look's unseen flows weighed by every flow seen there (made after the
	// run), 96/100. Unknown: a return blackhole at q3 of three, at just
	// under 10 to 1 over an unseen member beside r2. Wrong: two links dead
	// toward the client called forward by a pair whose forward half holds
	// a few flows (three after r1, rate-limited: right before a flow
	// silent at TTL 1 came to cross r1, firstHop; and a few after a q
	// behind a silent r1: right once the look's flows were weighed apart,
	// Looked.Ports), and a link dead both ways, rate-limited, called
	// return.
	"w2x6-s3580582742-inbound-fixed-link-oneway-q5-p1-ratelimit1000": "unknown where routers rate-limit (was: forward, want return; margin 3.7)",
	"w3x3-s1983681958-outgoing-flow-link-drop-p2-q3-ratelimit1000":   "return, want forward",
	"w3x3-s75629056-outgoing-flow-blackhole-ret-q3-ratelimit0":       "unknown",
	// Seed 24680, never drawn before, measured with the code as it is
	// before it was read: 96/100, one unknown, three wrong, 33/36; every
	// fabric without a rate limit right, direction and suspect. All
	// rate-limited: a return blackhole at p2 of two behind a silent r1,
	// unknown (the member beside r2, width two, fits its half); a forward
	// blackhole at q3 called return at 43 to 1; two links dead both ways
	// whose first suspect is r1 (with the code of the day before too). A
	// return blackhole at q5 and a SYN-ACK dropper at p8 were called
	// forward by a pair whose forward half held the failing flows silent
	// past the look's place, where the look's flows, probed once the
	// routers had earned answers back, answered: right once those were
	// weighed apart (Looked.Ports, lookedFixture).
	"w2x2-s784735550-inbound-fixed-blackhole-ret-p2-ratelimit1000-silent-r1":              "unknown",
	"w3x4-s113554571-router-id-fixed-blackhole-fwd-q3-ratelimit1000-v6":                   "unknown where routers rate-limit (was: return, want forward; margin 3.8)",
	"w4x2-s1806519415-outgoing-fixed-link-drop-p3-q2-silent-r2-ipid-shared-ratelimit1000": "first suspect r1",
	"w6x6-s972857762-inbound-fixed-link-drop-p5-q5-silent-p5-ratelimit1000":               "first suspect r1",
	// Seed 30303, never drawn before, measured with the look's flows
	// weighed apart (Looked.Ports, recorded with them) before it was read:
	// 96/100, three unknown, one wrong, 34/34; every fabric without a rate
	// limit right. All rate-limited: a return blackhole and a SYN-ACK
	// dropper at a p of two behind a silent r2, and a return blackhole at
	// q2 of four behind a silent r1, unknown (an unseen member beside r2,
	// silent or not, fits as well: the one-tier tie); a return blackhole
	// at q2 of two beside a silent p2 (q2's own errors lost with the rest)
	// called forward at 67 to 1, an unseen member beside r2: the same tie,
	// where the unseen member's share fits a little better.
	"w2x0-s1900210015-outgoing-fixed-blackhole-ret-p1-silent-r2-ipid-shared-ratelimit1000-silent-r1": "unknown",
	"w2x0-s665553339-outgoing-fixed-drop-synack-p2-silent-r2-ratelimit1000-v6":                       "unknown",
	"w2x4-s1837606030-outgoing-flow-blackhole-ret-q2-ratelimit1000-silent-r1":                        "unknown",
	"w6x2-s1797308635-router-id-fixed-blackhole-ret-q2-silent-p2-ipid-shared-ratelimit1000":          "unknown where routers rate-limit (was: forward, want return; margin 4.2)",
	// Seed 60606, never drawn before, measured with a direction needing
	// 100 to 1 where routers rate-limit, before it was read: 93/100, seven
	// unknown, no wrong direction, 26/27. The rule changed none of its
	// verdicts (none falls between 10 and 100 to 1 where routers
	// rate-limit). Six of the unknown are the one-tier tie without a rate
	// limit: a return fault at a p (three of width two, one of 13 beside a
	// silent p3), a link dead toward the client into p7 of seven behind a
	// silent r1, against an unseen member beside r2; and a forward
	// blackhole at q2 of two against a link dead toward the client into
	// the first tier, the same tie the other way. The seventh, a
	// SYN-ACK dropper at q1 of two behind a silent r2, is the same tie at
	// 1.2 to 1. The wrong suspect: a link dead both ways out of p2, which
	// sends no time-exceeded, named as the silent hop after r1.
	"w13x0-s2427898565-outgoing-flow-blackhole-ret-p4-silent-p3-ratelimit0-v6":            "unknown, 1.8 to 1",
	"w2x0-s157769141-inbound-fixed-drop-synack-p1-silent-r2-ratelimit0-v6":                "unknown, 1.6 to 1",
	"w2x0-s2748256301-router-id-flow-blackhole-ret-p2-ipid-shared-ratelimit0-silent-r1":   "unknown, just under 10 to 1",
	"w2x0-s969783328-router-id-flow-blackhole-ret-p2-ratelimit0-v6":                       "unknown, just under 10 to 1",
	"w2x2-s4003393940-router-id-fixed-blackhole-fwd-q2-ratelimit0-v6":                     "unknown, 4 to 1",
	"w7x0-s2912987244-inbound-flow-link-oneway-r2-p7-ratelimit0-silent-r1-v6":             "unknown, 2 to 1",
	"w5x2-s3785235323-router-id-fixed-drop-synack-q1-silent-r2-ipid-shared-ratelimit1000": "unknown, 1.2 to 1",
	"w4x4-s2934927922-outgoing-fixed-link-drop-p2-q2-silent-p2-ratelimit1000":             "first suspect the silent hop after r1",
	// Seed 70707, 60 fabrics never drawn, every one rate-limited
	// (ECMPSCAN_ACCURACY_RATELIMIT=1000), measured with a direction
	// needing 100 to 1 there, before it was read: 55/60, four unknown, one
	// wrong, 23/25. The rule turned one wrong direction unknown (a link
	// dead both ways out of p2 beside a silent q1: a return member ahead
	// of an unseen forward member by exactly the prior's 10 to 1) and no
	// right one. The other unknown ones are the one-tier tie: return
	// faults at p1 of two behind a silent r2 (one a SYN-ACK dropper) and
	// at q2 of two, at 1 to 1 up to 2.5 to 1. Wrong: a link dead both
	// ways behind a silent r1, called return at 21 nats (right since a
	// pair's chances multiply).
	"w2x0-s915302379-inbound-fixed-drop-synack-p1-silent-r2-ipid-shared-ratelimit1000":   "unknown, 2.5 to 1",
	"w2x2-s2289114363-inbound-fixed-link-drop-p2-q2-silent-q1-ipid-shared-ratelimit1000": "unknown, 10 to 1 where rate-limited routers need 100 (return before the rule)",
	"w2x4-s783377529-inbound-fixed-blackhole-ret-p1-silent-r2-ratelimit1000-v6":          "unknown, 1.7 to 1",
	"w5x2-s2071903667-outgoing-fixed-blackhole-ret-q2-ipid-shared-ratelimit1000":         "unknown, 1 to 1",
}

// labSharedCounters are the recorded fabrics where two lab routers did
// answer from one counter: the lab's routers are namespaces of one
// kernel, whose IPv4 ID counters are one array for all of them (Linux's
// ip_idents, indexed by a hash of destination, source, protocol and
// namespace), so two routers' errors to the client can land on one slot.
// Their IDs interleave as one counter's; no two routers with kernels of
// their own do that.
var labSharedCounters = map[string]string{
	"w14x0-s3042217308-router-id-flow-drop-synack-p12-silent-r2-ratelimit0-silent-r1": "p12 and p13: 24 answers counting up 53279..53315 in turn",
}

func loadRecorded(t *testing.T) map[string]recordedTrace {
	t.Helper()
	dir := filepath.Join("testdata", "recorded")
	if d := os.Getenv("ECMPSCAN_RECORDED_DIR"); d != "" {
		dir = d // a draw just recorded (ECMPSCAN_RECORD=DIR make accuracy), to look into it
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.json.gz"))
	if len(files) == 0 {
		t.Fatal("no recorded traces in testdata/recorded")
	}
	out := map[string]recordedTrace{}
	for _, file := range files {
		r, err := readRecorded(file)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		out[strings.TrimSuffix(filepath.Base(file), ".json.gz")] = r
	}
	return out
}

// decode decodes a recorded trace. Those recorded after a second look
// counted its flows (Looked.Picked) but before it named them (Ports) get
// them from their hops: a flow the look traced crossed its place with the
// look's probes there and its own (twice the probes per hop), where a flow
// of the first pass that crossed it answered its first probes and was not
// probed again there, or, answering only when probed again, seldom as many
// times. Where more flows show that than it picked, none is named (3 of
// 134 recorded).
func (r recordedTrace) decode() (Trace, error) {
	tr, err := DecodeTrace(r.Trace)
	l := tr.Looked
	if err != nil || l == nil || l.Ports != nil || l.Unseen == nil {
		return tr, err
	}
	var ports []uint16
	for _, f := range tr.Flows {
		if l.CrossedBy(f.Hops) && f.Hops[l.TTL-1].Probes == 2*tr.ProbesPerHop {
			ports = append(ports, f.Sport)
		}
	}
	if len(ports) == l.Picked {
		l.Ports = ports
	}
	return tr, nil
}

func readRecorded(file string) (recordedTrace, error) {
	var r recordedTrace
	fh, err := os.Open(file)
	if err != nil {
		return r, err
	}
	defer fh.Close()
	z, err := gzip.NewReader(fh)
	if err != nil {
		return r, err
	}
	err = json.NewDecoder(z).Decode(&r)
	return r, err
}

// TestRecordedTraces diagnoses every recorded trace from one end and checks
// the direction, and for a forward fault the first suspect, against the
// oracle's.
func TestRecordedTraces(t *testing.T) {
	skipShort(t)
	recs := loadRecorded(t)
	names := make([]string, 0, len(recs))
	for n := range recs {
		names = append(names, n)
	}
	slices.Sort(names)
	right, unknown := 0, 0
	outcomes := os.Getenv("ECMPSCAN_RECORDED_OUTCOMES") // a file to write each fabric's outcome to
	var lines []string
	for _, name := range names {
		r := recs[name]
		tr, err := r.decode()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		d := WithFirstHop(DiagnoseSample(tr.Flows, r.sample(tr)), tr.Flows, tr.Gateway)
		why := r.check(d)
		for _, g := range d.SharedIPID {
			nodes := map[string]bool{}
			for _, a := range g {
				nodes[r.Nodes[a.String()]] = true
			}
			if len(nodes) != 1 && labSharedCounters[name] == "" {
				t.Errorf("%s: %v taken for one router by their IP IDs are the lab's %v", name, g, nodes)
			}
		}
		if d.Direction == DirectionUnknown {
			unknown++
			// Unknown is a forward rival as likely: nothing is exonerated.
			if strings.Contains(d.Text, "exonerated") {
				t.Errorf("%s: unknown, yet the text exonerates a direction: %s", name, d.Text)
			}
		}
		lines = append(lines, fmt.Sprintf("%s %s %q margin %.3f dirmargin %.3f", name, d.Direction, why, d.Margin, directionMargin(d.Hypotheses)))
		miss, known := knownMisses[name]
		switch {
		case why == "" && known:
			t.Errorf("%s is right now (%s): take it off knownMisses (%s)", name, d.Direction, miss)
		case why != "" && !known:
			t.Errorf("%s (%s): %s\n%s", name, r.Fabric, why, d.Text)
		case why == "":
			right++
		}
	}
	t.Logf("%d of %d recorded fabrics right from one end, %d unknown", right, len(names), unknown)
	if outcomes != "" {
		_ = os.WriteFile(outcomes, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
	}
}

func (r recordedTrace) sample(tr Trace) Sample {
	if r.Sample == nil {
		return tr.Sample() // the trace's own picks (untraced), or every flow
	}
	return Sample{Fail: r.Sample.Fail, OK: r.Sample.OK}
}

// check says what is wrong with a diagnosis, "" when nothing is: the
// direction, and for a forward fault the first suspect (the faulty router
// or link, the router before it, or an unseen member behind those).
func (r recordedTrace) check(d Diagnosis) string {
	if d.Direction != r.Want {
		return fmt.Sprintf("direction %s, want %s", d.Direction, r.Want)
	}
	if r.Want != DirectionForward {
		return ""
	}
	if len(d.Suspects) == 0 {
		return "no suspect"
	}
	s := d.Suspects[0]
	node := func(a netip.Addr) string {
		if !a.IsValid() {
			return ""
		}
		return r.Nodes[a.String()]
	}
	preds := r.predecessors()
	from, next := node(s.Addr), node(s.Next)
	if s.Direction == DirectionForward && (from == r.At || next == r.At || slices.Contains(preds, from)) {
		return ""
	}
	for _, b := range append(slices.Clone(s.Behind), s.FirstHop) {
		if !s.Addr.IsValid() && b.IsValid() && slices.Contains(preds, node(b)) {
			return ""
		}
	}
	return fmt.Sprintf("first suspect %s %s (%s) -> %s (%s) behind %v, want %s (before %v)",
		s.Direction, s.Addr, from, s.Next, next, s.Behind, r.At, preds)
}

// predecessors are the lab routers right before the faulty one.
func (r recordedTrace) predecessors() []string {
	switch {
	case r.Before != "":
		return []string{r.Before}
	case strings.HasPrefix(r.At, "p"):
		return []string{"r1"}
	case strings.HasPrefix(r.At, "q"):
		var ps []string
		for i := 1; i <= 16; i++ {
			ps = append(ps, fmt.Sprintf("p%d", i))
		}
		return ps
	}
	return nil
}

// TestRecordedExplain prints the hypotheses of the recorded traces whose
// names contain ECMPSCAN_RECORDED, to look into one (go test -v -run
// TestRecordedExplain ./report).
func TestRecordedExplain(t *testing.T) {
	want := os.Getenv("ECMPSCAN_RECORDED")
	if want == "" {
		t.Skip("set ECMPSCAN_RECORDED to part of a recorded trace's name")
	}
	for name, r := range loadRecorded(t) {
		if !strings.Contains(name, want) {
			continue
		}
		tr, err := r.decode()
		if err != nil {
			t.Fatal(err)
		}
		d := WithFirstHop(DiagnoseSample(tr.Flows, r.sample(tr)), tr.Flows, tr.Gateway)
		if os.Getenv("ECMPSCAN_DEBUG") != "" {
			explainCandidates(t, tr.Flows, r.sample(tr))
		}
		if os.Getenv("ECMPSCAN_DEBUG") == "flows" {
			logFlows(t, tr.Flows, r.Nodes)
		}
		t.Logf("%s (%s): %s, margin %.1f; %s", name, r.Fabric, d.Direction, d.Margin, r.check(d))
		t.Logf("  says: %s", d.Text)
		for i, h := range d.Hypotheses {
			if i == 8 {
				break
			}
			t.Logf("  %7.2f %s %s ttl %d addr %s (%s) next %s (%s) behind %d share %.3f explains %d contradicts %d icmp %q",
				h.Score, h.Direction, h.Kind, h.TTL, h.Addr, r.Nodes[h.Addr.String()], h.Next, r.Nodes[h.Next.String()],
				len(h.Behind), h.Share, h.Explains, h.Contradicts, h.ICMPPath)
			if h.And != nil {
				t.Logf("          and %s %s ttl %d addr %s share %.3f explains %d", h.And.Direction, h.And.Kind, h.And.TTL, h.And.Addr, h.And.Share, h.And.Explains)
			}
		}
	}
}

// logFlows logs each flow's hops by lab node, failing flows first.
func logFlows(t *testing.T, flows []FlowTrace, nodes map[string]string) {
	for _, failing := range []bool{true, false} {
		for _, f := range flows {
			if (f.State == hash.StateOK) == failing {
				continue
			}
			line := fmt.Sprintf("  %-6s %5d", f.State, f.Sport)
			for _, h := range f.Hops {
				switch {
				case h.Reached:
					line += " T"
				case !h.Addr.IsValid():
					line += fmt.Sprintf(" *%d", h.Probes)
				default:
					line += " " + nodes[h.Addr.String()]
					if h.Answers < h.Probes {
						line += fmt.Sprintf("(%d/%d)", h.Answers, h.Probes)
					}
				}
			}
			t.Log(line)
		}
	}
}

// explainCandidates logs every candidate's readings and score.
func explainCandidates(t *testing.T, flows []FlowTrace, sample Sample) {
	a := newAnalysis(flows)
	e := a.evidence(sample)
	r := a.reading(alter{})
	t.Logf("  reading: link fit %.3g: router %v link %v", r.fit, r.router, r.link)
	cands := append(a.forwardCandidates(e), a.returnCandidates(e)...)
	for _, c := range cands {
		a.twoEnded(c, sample.Arrived)
		e.score(c)
	}
	sortCandidates(cands)
	pairs := e.pairs(slices.DeleteFunc(slices.Clone(cands), func(c *candidate) bool { return math.IsInf(c.h.Score, -1) || c.h.Explains == 0 }))
	sortCandidates(pairs)
	for i, c := range pairs {
		if i == 4 {
			break
		}
		t.Logf("  pair %8.2f %s %s ttl %d %s + %s %s ttl %d", c.h.Score, c.h.Direction, c.h.Kind, c.h.TTL, c.h.Addr, c.h.And.Direction, c.h.And.Kind, c.h.And.TTL)
	}
	for i, c := range cands {
		if i == 12 {
			break
		}
		t.Logf("  %8.2f %s %s ttl %d widths %v alter %+v link fit %.3g prior %.2f share %.3f explains %d icmp %q",
			c.h.Score, c.h.Direction, c.h.Kind, c.h.TTL, c.shares.widths, c.shares.alter, a.reading(c.shares.alter).fit, c.prior, c.h.Share, c.h.Explains, c.h.ICMPPath)
	}
}

// A link dead both ways whose few flows lost on the way out do not make
// the pair decisive (rate-limited routers answered them too rarely): the
// verdict is the return fault, and the hop before the forward link is
// still named, last, as a place to look.
func TestRecordedTentativeSecondFault(t *testing.T) {
	r := loadRecorded(t)["w3x4-s2508799370-outgoing-fixed-link-drop-p2-q3-ratelimit1000"]
	tr, err := r.decode()
	if err != nil {
		t.Fatal(err)
	}
	d := Diagnose(tr.Flows)
	last := d.Suspects[len(d.Suspects)-1]
	if d.Direction != DirectionReturn || d.Suspects[0].Direction != DirectionReturn || last.Direction != DirectionForward ||
		r.Nodes[last.Addr.String()] != "p2" || (last.Next.IsValid() && r.Nodes[last.Next.String()] != "q3") ||
		!strings.Contains(last.Evidence, "not by 10 to 1") || !strings.Contains(d.Text, "a second fault on the way out") {
		t.Errorf("got %s, last suspect %s %s -> %s: %s", d.Direction, last.Direction, r.Nodes[last.Addr.String()], r.Nodes[last.Next.String()], d.Text)
	}
}

// silenceFirstHop makes the recorded trace's first hop answer no probe, as
// a client gateway that sends no time-exceeded does, and gives the
// diagnosis that gateway, named by one of its addresses, as the routing
// table would.
func (r recordedTrace) silenceFirstHop(flows []FlowTrace) netip.Addr {
	var gw netip.Addr
	for i := range flows {
		if len(flows[i].Hops) == 0 || flows[i].Hops[0].Reached {
			continue
		}
		h := &flows[i].Hops[0]
		if h.Addr.IsValid() && r.Nodes[h.Addr.String()] == "r1" {
			gw = h.Addr
		}
		h.Addr, h.Others, h.Answers, h.ICMPType, h.ICMPCode = netip.Addr{}, nil, 0, 0, 0
	}
	return gw
}

// knownSilentFirstHopMisses are the recorded forward faults whose first
// suspect is wrong once their first hop is silenced, and why.
var knownSilentFirstHopMisses = map[string]string{
	// Rate-limited: with r1 silenced, the 8 flows lost on the way out
	// after p2 have no answer at any TTL (p2 answered none of them), so
	// the forward half of the pair is "at the first hop".
	"w6x2-s1764809826-inbound-flow-link-drop-p2-q2-ratelimit1000-wide": "first suspect at the first hop",
}

// A client gateway that answers no probe: the recorded traces with their
// first hop silenced keep their first suspect, the gateway naming the
// routers behind it (WithFirstHop), on every forward fault whose diagnosis
// keeps its direction.
func TestRecordedSilentFirstHop(t *testing.T) {
	skipShort(t)
	checked, named, turned := 0, 0, 0
	for name, r := range loadRecorded(t) {
		// (Those recorded behind a silent r1 are checked, with the
		// gateway they recorded, by TestRecordedTraces.)
		if _, known := knownMisses[name]; known || r.Want != DirectionForward || strings.Contains(name, "silent-r1") {
			continue
		}
		tr, err := r.decode()
		if err != nil {
			t.Fatal(err)
		}
		gw := r.silenceFirstHop(tr.Flows)
		if !gw.IsValid() {
			t.Fatalf("%s: no r1 address at TTL 1", name)
		}
		d := WithFirstHop(DiagnoseSample(tr.Flows, r.sample(tr)), tr.Flows, gw)
		if d.Direction != r.Want {
			turned++ // the silence took evidence away: measured, not pinned
			continue
		}
		checked++
		if len(d.Suspects) > 0 && d.Suspects[0].FirstHop.IsValid() {
			named++
		}
		why := r.check(d)
		miss, known := knownSilentFirstHopMisses[name]
		switch {
		case why == "" && known:
			t.Errorf("%s with a silent first hop is right now: take it off knownSilentFirstHopMisses (%s)", name, miss)
		case why != "" && !known:
			t.Errorf("%s with a silent first hop: %s", name, why)
		}
	}
	if named == 0 {
		t.Error("no first suspect named the gateway")
	}
	t.Logf("%d forward faults behind a silent first hop checked, %d named the gateway first; %d lost their direction", checked, named, turned)
}

// skipShort skips the diagnoses of every recorded trace under -short: the
// race run (make race) would spend two minutes on single-threaded
// arithmetic that the full run checks anyway.
func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the recorded traces are diagnosed by the full run")
	}
}

// directionMargin is the log-likelihood ratio of the best hypothesis over
// the best of the other direction (+Inf where there is none), for
// measuring how sure directions called at a given ratio are.
func directionMargin(hs []Hypothesis) float64 {
	if len(hs) == 0 {
		return 0
	}
	best := slices.MaxFunc(hs, func(a, b Hypothesis) int { return cmp.Compare(a.Score, b.Score) })
	other := math.Inf(-1)
	for _, h := range hs {
		if h.Direction != best.Direction {
			other = max(other, h.Score)
		}
	}
	return best.Score - other
}
