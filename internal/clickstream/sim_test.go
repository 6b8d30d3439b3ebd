package clickstream

import (
	"math"
	"regexp"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// stepClock returns a clock that advances by step on every reading.
func stepClock(start time.Time, step time.Duration) func() time.Time {
	t := start
	return func() time.Time {
		now := t
		t = t.Add(step)
		return now
	}
}

var epoch = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func TestSimulatorIsDeterministic(t *testing.T) {
	cat := DefaultCatalogue()
	a := NewSimulator(cat, 42, 10, stepClock(epoch, time.Millisecond))
	b := NewSimulator(cat, 42, 10, stepClock(epoch, time.Millisecond))
	c := NewSimulator(cat, 43, 10, stepClock(epoch, time.Millisecond))
	same := 0
	for i := range 5000 {
		ea, eb, ec := a.Next(), b.Next(), c.Next()
		require.Equal(t, ea, eb, "event %d", i)
		if ea == ec {
			same++
		}
	}
	require.Less(t, same, 10, "seeds 42 and 43 gave the same events")
	require.Equal(t, a.Stats(), b.Stats())
}

var (
	uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	timeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
	userRE = regexp.MustCompile(`^user-\d{5}$`)
)

// TestSimulatorSessions follows every session through 50,000 events and
// checks the shape of each event and of each session's walk.
func TestSimulatorSessions(t *testing.T) {
	cat := DefaultCatalogue()
	clock := stepClock(epoch, 1500*time.Microsecond)
	sim := NewSimulator(cat, 7, 25, clock)

	type state struct {
		seq       int
		user      string
		cartItems int
		last      Event
	}
	sessions := map[string]*state{}
	ids := map[string]bool{}
	types := map[string]int{}
	groups := map[string]bool{}
	for _, g := range cat.ProductGroups {
		groups[g.Name] = true
	}
	var prev time.Time
	const n = 50000
	for range n {
		ev := sim.Next()
		types[ev.EventType]++
		ts, err := time.Parse(time.RFC3339Nano, ev.Timestamp)
		require.NoError(t, err)
		require.True(t, timeRE.MatchString(ev.Timestamp), ev.Timestamp)
		require.False(t, ts.Before(prev), "timestamps go back: %s after %s", ev.Timestamp, prev)
		prev = ts
		require.True(t, uuidRE.MatchString(ev.EventID), ev.EventID)
		require.True(t, uuidRE.MatchString(ev.SessionID), ev.SessionID)
		require.False(t, ids[ev.EventID], "event id %s repeats", ev.EventID)
		ids[ev.EventID] = true
		require.True(t, userRE.MatchString(ev.UserID), ev.UserID)
		require.NotEmpty(t, ev.Section)
		require.NotEmpty(t, ev.Element)
		switch ev.EventType {
		case EventImpression:
			require.Contains(t, cat.Campaigns, ev.CampaignID)
		case EventClick: // a banner click carries the campaign
		default:
			require.Empty(t, ev.CampaignID, "campaign id on %+v", ev)
		}

		st := sessions[ev.SessionID]
		if st == nil {
			require.Equal(t, 1, ev.Seq, "a session starts with seq 1")
			require.Equal(t, EventPageView, ev.EventType)
			require.Equal(t, PageHome, ev.Page)
			st = &state{user: ev.UserID}
			sessions[ev.SessionID] = st
		} else {
			require.Equal(t, st.seq+1, ev.Seq)
			require.Equal(t, st.user, ev.UserID)
		}
		st.seq = ev.Seq

		switch ev.Page {
		case PageCategory:
			require.True(t, groups[ev.ProductGroup], "group %q", ev.ProductGroup)
		case PageProduct:
			require.True(t, groups[ev.ProductGroup], "group %q", ev.ProductGroup)
			require.NotEmpty(t, ev.Product)
		}
		switch ev.EventType {
		case EventAddToCart:
			require.Equal(t, PageProduct, ev.Page)
			require.Positive(t, ev.Price)
			st.cartItems++
		case EventCheckout:
			require.Equal(t, PageCheckout, ev.Page)
			require.Equal(t, st.cartItems, ev.CartItems)
			require.Positive(t, ev.CartValue)
		case EventPageView:
			if ev.Page == PageCart || ev.Page == PageCheckout {
				require.Positive(t, st.cartItems, "cart page without items")
			}
			if ev.Page == PageProduct {
				require.Equal(t, EventClick, st.last.EventType, "a product page follows a click")
				require.Equal(t, ev.Product, st.last.Product)
			}
		}
		st.last = ev
	}
	for _, typ := range []string{EventPageView, EventImpression, EventClick, EventAddToCart, EventCheckout} {
		require.Positive(t, types[typ], "no %s events", typ)
	}
	stats := sim.Stats()
	require.Equal(t, int64(len(sessions)), stats.SessionsStarted)
	// Sessions still in the simulator's slots may or may not have finished.
	require.GreaterOrEqual(t, stats.SessionsCompleted, int64(len(sessions)-len(sim.sessions)))
	require.Less(t, stats.SessionsCompleted, int64(len(sessions)))
	require.Positive(t, stats.Checkouts)
	require.Equal(t, int64(types[EventCheckout]), stats.Checkouts)
	t.Logf("%d events, %d sessions, %d checkouts; by type %v", n, len(sessions), stats.Checkouts, types)
}

// chiSquare001 holds the chi-square critical values at significance 0.001
// for 1 to 10 degrees of freedom.
var chiSquare001 = []float64{0, 10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124, 27.877, 29.588}

// TestProductGroupFrequencies draws 100,000 product page views with a fixed
// seed and compares how often each product group was viewed with the
// catalogue's weights. Tolerance: every group's share is within ±1
// percentage point of its configured probability, and the chi-square
// statistic is below the critical value at significance 0.001 for k-1
// degrees of freedom. Products within each group are checked the same way
// against their weights, summed into one chi-square test over all products.
func TestProductGroupFrequencies(t *testing.T) {
	cat := DefaultCatalogue()
	sim := NewSimulator(cat, 20250301, 50, stepClock(epoch, time.Millisecond))
	const views = 100_000
	groupCount := map[string]int{}
	productCount := map[string]int{}
	for i, got := 0, 0; got < views; i++ {
		require.Less(t, i, 20*views, "too few product views")
		ev := sim.Next()
		if ev.EventType == EventPageView && ev.Page == PageProduct {
			groupCount[ev.ProductGroup]++
			productCount[ev.Product]++
			got++
		}
	}

	probs := cat.GroupProbabilities()
	var chi2 float64
	var names []string
	for name := range probs {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := probs[name]
		observed := float64(groupCount[name])
		expected := p * views
		chi2 += (observed - expected) * (observed - expected) / expected
		share := observed / views
		t.Logf("%-14s configured %6.3f%%  observed %6.3f%%", name, 100*p, 100*share)
		require.InDelta(t, p, share, 0.01, "group %s", name)
	}
	df := len(probs) - 1
	t.Logf("groups: chi-square %.2f with %d degrees of freedom (critical value %.3f at 0.001)", chi2, df, chiSquare001[df])
	require.Less(t, chi2, chiSquare001[df])

	// Products within their group.
	var pchi2 float64
	var pdf int
	for _, g := range cat.ProductGroups {
		var total float64
		for _, p := range g.Products {
			total += *p.Weight
		}
		n := float64(groupCount[g.Name])
		for _, p := range g.Products {
			expected := n * *p.Weight / total
			observed := float64(productCount[p.ID])
			pchi2 += (observed - expected) * (observed - expected) / expected
		}
		pdf += len(g.Products) - 1
	}
	// Wilson–Hilferty approximation of the 0.999 quantile for pdf degrees
	// of freedom (the table above stops at 10).
	k := float64(pdf)
	crit := k * math.Pow(1-2/(9*k)+3.090232*math.Sqrt(2/(9*k)), 3)
	t.Logf("products within groups: chi-square %.2f with %d degrees of freedom (critical value %.2f at 0.001)", pchi2, pdf, crit)
	require.Less(t, pchi2, crit)
}

// TestSessionLength checks that browse steps per session have the
// configured mean (geometric, cut at maxSteps) within 2%.
func TestSessionLength(t *testing.T) {
	cat := DefaultCatalogue()
	sim := NewSimulator(cat, 99, 1, stepClock(epoch, time.Millisecond))
	const sessions = 20000
	steps := map[string]int{}
	order := []string{}
	for i := 0; len(order) <= sessions; i++ {
		require.Less(t, i, 100*sessions)
		ev := sim.Next()
		if _, ok := steps[ev.SessionID]; !ok {
			order = append(order, ev.SessionID)
			steps[ev.SessionID] = 0
		}
		if ev.EventType == EventPageView && ev.Page == PageCategory {
			steps[ev.SessionID]++
		}
	}
	var sum, longest int
	for _, id := range order[:sessions] { // the last one may be unfinished
		sum += steps[id]
		longest = max(longest, steps[id])
		require.GreaterOrEqual(t, steps[id], 1)
	}
	mean := float64(sum) / sessions
	// The cut at maxSteps lowers the mean by (1-1/m)^max·m, negligible here.
	t.Logf("mean steps %.3f (configured %g), longest %d (max %d)", mean, cat.Session.MeanSteps, longest, cat.Session.MaxSteps)
	require.InEpsilon(t, cat.Session.MeanSteps, mean, 0.02)
	require.LessOrEqual(t, longest, cat.Session.MaxSteps)
}

func BenchmarkSimulatorNext(b *testing.B) {
	sim := NewSimulator(DefaultCatalogue(), 1, 100, time.Now)
	b.ReportAllocs()
	for b.Loop() {
		sim.Next()
	}
}
