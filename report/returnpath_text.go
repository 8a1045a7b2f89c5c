package report

import "fmt"

// returnPathsText says what the return-path traces showed.
func returnPathsText(rp *ReturnPaths) string {
	lead := fmt.Sprintf("; traced back from the responder on the answers' own tuples (%d %s, SYN-ACK-shaped probes%s)",
		rp.Flows, plural(rp.Flows, "flow", "flows"), returnRetriedText(rp.Retried))
	switch {
	case rp.Err != "":
		return "; the return paths could not be traced from the responder: " + rp.Err
	case rp.Failing == 0:
		return lead + ": no failing flow among them"
	case rp.Direction == DirectionReturn && len(rp.Suspects) > 0:
		s := rp.Suspects[0]
		return fmt.Sprintf("%s, the answers of %d failing %s die at the %s: %s", lead, s.Explains,
			plural(s.Explains, "flow", "flows"), suspectName(s), s.Evidence)
	case rp.FailingReached > 0:
		return fmt.Sprintf("%s, %d of %d failing %s got through to the client: the path passes SYN-ACKs, so what loses the answers "+
			"keeps state (a firewall or load balancer) or is the server itself", lead, rp.FailingReached, rp.Failing, plural(rp.Failing, "flow", "flows"))
	}
	return fmt.Sprintf("%s, no place on the way back explains the %d failing %s (%s)", lead, rp.Failing,
		plural(rp.Failing, "flow", "flows"), rp.Direction)
}

// returnRetriedText says what probing the return paths' rate-limited hops
// again brought, if the responder did.
func returnRetriedText(r *Retried) string {
	if r == nil {
		return ""
	}
	return fmt.Sprintf("; the routers at TTL %s from the responder rate-limit their errors: %d silent %s probed again in %d %s, %d answered",
		ttlsAnd(r.TTLs), r.Holes, plural(r.Holes, "hop", "hops"), r.Rounds, plural(r.Rounds, "round", "rounds"), r.Answers)
}
