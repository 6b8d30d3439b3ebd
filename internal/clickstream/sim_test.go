package clickstream

import (
	"math"
	"regexp"
	"sort"
	"strconv"
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

// chiSquareCritical001 is the chi-square critical value at significance
// 0.001 for df degrees of freedom: from the table up to 10, beyond by the
// Wilson–Hilferty approximation of the 0.999 quantile.
func chiSquareCritical001(df int) float64 {
	if df < len(chiSquare001) {
		return chiSquare001[df]
	}
	k := float64(df)
	return k * math.Pow(1-2/(9*k)+3.090232*math.Sqrt(2/(9*k)), 3)
}

// requireShares checks how often each outcome was counted against its
// probability in probs: every observed share within ±tol of it, and the
// chi-square statistic below the critical value at significance 0.001
// for len(probs)-1 degrees of freedom. An outcome without a probability
// fails the test.
func requireShares(t testing.TB, what string, counts map[string]int, probs map[string]float64, tol float64) {
	t.Helper()
	n := 0
	for k, c := range counts {
		_, ok := probs[k]
		require.True(t, ok, "%s: %q counted but not expected", what, k)
		n += c
	}
	require.Positive(t, n, what)
	names := make([]string, 0, len(probs))
	for name := range probs {
		names = append(names, name)
	}
	sort.Strings(names)
	var chi2 float64
	for _, name := range names {
		p := probs[name]
		observed := float64(counts[name])
		expected := p * float64(n)
		chi2 += (observed - expected) * (observed - expected) / expected
		share := observed / float64(n)
		t.Logf("%s %-14s configured %6.3f%%  observed %6.3f%%", what, name, 100*p, 100*share)
		require.InDelta(t, p, share, tol, "%s %s", what, name)
	}
	df := len(probs) - 1
	crit := chiSquareCritical001(df)
	t.Logf("%s: chi-square %.2f with %d degrees of freedom over %d draws (critical value %.3f at 0.001)", what, chi2, df, n, crit)
	require.Less(t, chi2, crit, what)
}

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

	requireShares(t, "groups", groupCount, cat.GroupProbabilities(), 0.01)

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
	crit := chiSquareCritical001(pdf)
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

// urlRe matches the url events of the built-in catalogue's templates.
var urlRe = regexp.MustCompile(`^https://store\.example\.com/api/group/([0-9]+)(?:/product/([0-9]+))?\?userid=([0-9]+)$`)

// urlTally counts url events by product group and kind, checking each
// against the catalogue: a known group id, a product id inside the
// group's productIds, a user id from 1 to users.
type urlTally struct {
	cat        *Catalogue
	byID       map[int]ProductGroup
	groups     map[string]int // by group name
	kinds      map[string]int // "group" or "product"
	middleHalf int            // product ids in the middle half of their range
}

func newURLTally(cat *Catalogue) *urlTally {
	u := &urlTally{cat: cat, byID: map[int]ProductGroup{}, groups: map[string]int{}, kinds: map[string]int{}}
	for _, g := range cat.ProductGroups {
		u.byID[g.ID] = g
	}
	return u
}

func (u *urlTally) add(t testing.TB, url string) {
	t.Helper()
	m := urlRe.FindStringSubmatch(url)
	require.NotNil(t, m, "url %q", url)
	gid, err := strconv.Atoi(m[1])
	require.NoError(t, err)
	g, ok := u.byID[gid]
	require.True(t, ok, "url %q: no product group %d", url, gid)
	u.groups[g.Name]++
	user, err := strconv.Atoi(m[3])
	require.NoError(t, err)
	require.True(t, user >= 1 && user <= u.cat.Users, "url %q: user outside 1..%d", url, u.cat.Users)
	if m[2] == "" {
		u.kinds["group"]++
		return
	}
	u.kinds["product"]++
	id, err := strconv.Atoi(m[2])
	require.NoError(t, err)
	r := g.ProductIDs
	require.True(t, id >= r.Min && id <= r.Max, "url %q: product outside %s's ids %d..%d", url, g.Name, r.Min, r.Max)
	quarter := float64(r.Max-r.Min) / 4
	if float64(id) >= float64(r.Min)+quarter && float64(id) <= float64(r.Max)-quarter {
		u.middleHalf++
	}
}

// check compares the tally with the catalogue: product-group frequencies
// with the group weights and group-list clicks with urls.groupShare (each
// by a chi-square test, and every share within ±tol), and product ids
// more often in the middle half of their range than at its ends.
func (u *urlTally) check(t testing.TB, tol float64) {
	t.Helper()
	requireShares(t, "url groups", u.groups, u.cat.GroupProbabilities(), tol)
	share := *u.cat.URLs.GroupShare
	requireShares(t, "url kinds", u.kinds, map[string]float64{"group": share, "product": 1 - share}, tol)
	middle := float64(u.middleHalf) / float64(u.kinds["product"])
	t.Logf("product ids in the middle half of their range: %.1f%%", 100*middle)
	require.Greater(t, middle, 0.55, "ids near the middle come up more often")
}

// TestURLFrequencies draws 100,000 url events with a fixed seed: every
// URL has the catalogue's shape with ids inside their declared ranges,
// and product groups and group-list clicks come up as often as the
// catalogue says (chi-square at significance 0.001, shares within ±1
// percentage point).
func TestURLFrequencies(t *testing.T) {
	cat := DefaultCatalogue()
	require.NoError(t, cat.CheckURLFormat())
	sim := NewSimulator(cat, 20251206, 1, stepClock(epoch, time.Millisecond))
	tally := newURLTally(cat)
	for range 100_000 {
		tally.add(t, sim.NextURL().URL)
	}
	tally.check(t, 0.01)
}
