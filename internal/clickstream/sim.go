package clickstream

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Event types.
const (
	EventPageView   = "pageview"
	EventImpression = "impression"
	EventClick      = "click"
	EventAddToCart  = "add_to_cart"
	EventCheckout   = "checkout"
)

// TimeFormat is RFC 3339 with milliseconds, the format of Event.Timestamp.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// Event is one click event, written to the stream as a JSON object.
// ProductGroup and Product are "" on pages that show none; CampaignID is set
// on impressions and on clicks of a campaign banner.
type Event struct {
	Timestamp    string  `json:"timestamp"` // TimeFormat, UTC
	EventID      string  `json:"eventId"`
	EventType    string  `json:"eventType"`
	SessionID    string  `json:"sessionId"`
	UserID       string  `json:"userId"`
	Seq          int     `json:"seq"` // 1 for a session's first event, then 2, 3, ...
	Page         string  `json:"page"`
	Section      string  `json:"section"`
	Element      string  `json:"element"`
	ProductGroup string  `json:"productGroup"`
	Product      string  `json:"product"`
	CampaignID   string  `json:"campaignId,omitempty"`
	Price        float64 `json:"price,omitempty"`     // the product's, on add_to_cart
	CartItems    int     `json:"cartItems,omitempty"` // on the cart and checkout pages
	CartValue    float64 `json:"cartValue,omitempty"` // on the cart and checkout pages
}

// SimStats counts the sessions behind the events returned so far.
type SimStats struct {
	SessionsStarted   int64 `json:"sessionsStarted"`
	SessionsCompleted int64 `json:"sessionsCompleted"`
	Checkouts         int64 `json:"checkouts"`
}

// Simulator interleaves a fixed number of concurrent visitor sessions into
// one stream of events. Given the same catalogue, seed and clock readings it
// produces the same events. A Simulator is not safe for concurrent use.
type Simulator struct {
	cat      *Catalogue
	rng      *rand.Rand
	now      func() time.Time
	sessions []*session
	stats    SimStats

	groupCum   []float64   // cumulative group weights
	productCum [][]float64 // per group, cumulative product weights
	pStep      float64     // chance a session continues after a step
}

type session struct {
	id, user  string
	seq       int
	stepsLeft int
	started   bool
	done      bool
	cartItems int
	cartValue float64
	queue     []Event
}

// NewSimulator returns a simulator of sessions concurrent sessions (at
// least 1) over cat, with its randomness seeded by seed and its timestamps
// read from now.
func NewSimulator(cat *Catalogue, seed uint64, sessions int, now func() time.Time) *Simulator {
	s := &Simulator{
		cat: cat,
		rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		now: now,
	}
	var total float64
	for _, g := range cat.ProductGroups {
		total += *g.Weight
		s.groupCum = append(s.groupCum, total)
		var pt float64
		var cum []float64
		for _, p := range g.Products {
			pt += *p.Weight
			cum = append(cum, pt)
		}
		s.productCum = append(s.productCum, cum)
	}
	// A geometric number of steps with mean MeanSteps: after each step the
	// session goes on with probability 1 - 1/MeanSteps.
	s.pStep = 1 - 1/cat.Session.MeanSteps
	s.sessions = make([]*session, max(sessions, 1))
	for i := range s.sessions {
		s.sessions[i] = s.newSession()
	}
	return s
}

// Stats returns the session counts so far.
func (s *Simulator) Stats() SimStats { return s.stats }

// Next returns the next event of a randomly chosen session. A session that
// has ended is replaced by a new one.
func (s *Simulator) Next() Event {
	i := s.rng.IntN(len(s.sessions))
	ss := s.sessions[i]
	// A step queues at least one event except a final step with an empty
	// cart; a new session's first step always queues one. So this runs at
	// most three times.
	for range 3 {
		if len(ss.queue) > 0 {
			break
		}
		if ss.done {
			ss = s.newSession()
			s.sessions[i] = ss
		}
		s.step(ss)
	}
	ev := ss.queue[0]
	ss.queue = ss.queue[1:]
	ss.seq++
	ev.Seq = ss.seq
	ev.Timestamp = s.now().UTC().Format(TimeFormat)
	ev.EventID = s.uuid()
	ev.SessionID = ss.id
	ev.UserID = ss.user
	if ev.Seq == 1 {
		s.stats.SessionsStarted++
	}
	if ev.EventType == EventCheckout {
		s.stats.Checkouts++
	}
	if len(ss.queue) == 0 && ss.stepsLeft == 0 && (ss.done || ss.cartItems == 0) {
		s.stats.SessionsCompleted++ // that was its last event
	}
	return ev
}

func (s *Simulator) newSession() *session {
	steps := 1
	for steps < s.cat.Session.MaxSteps && s.rng.Float64() < s.pStep {
		steps++
	}
	return &session{
		id:        s.uuid(),
		user:      fmt.Sprintf("user-%05d", 1+s.rng.IntN(s.cat.Users)),
		stepsLeft: steps,
	}
}

// step queues the events of the session's next step: the landing page, a
// browse step, or the final visit to cart and checkout.
func (s *Simulator) step(ss *session) {
	p := s.cat.Probabilities
	switch {
	case !ss.started:
		ss.started = true
		s.pageView(ss, PageHome, "", "")

	case ss.stepsLeft > 0:
		ss.stepsLeft--
		gi := pick(s.rng, s.groupCum)
		g := s.cat.ProductGroups[gi].Name
		s.pageView(ss, PageCategory, g, "")
		if !s.chance(*p.ProductView) {
			break
		}
		pi := pick(s.rng, s.productCum[gi])
		prod := s.cat.ProductGroups[gi].Products[pi]
		s.queue(ss, EventClick, PageCategory, g, prod.ID)
		s.pageView(ss, PageProduct, g, prod.ID)
		if s.chance(*p.AddToCart) {
			ev := s.event(EventAddToCart, PageProduct, g, prod.ID)
			ev.Price = prod.Price
			ss.queue = append(ss.queue, ev)
			ss.cartItems++
			ss.cartValue += prod.Price
		}

	default:
		ss.done = true
		if ss.cartItems == 0 {
			return
		}
		ev := s.event(EventPageView, PageCart, "", "")
		ev.CartItems, ev.CartValue = ss.cartItems, round2(ss.cartValue)
		ss.queue = append(ss.queue, ev)
		if !s.chance(*p.Checkout) {
			return
		}
		s.queue(ss, EventClick, PageCart, "", "")
		s.pageView(ss, PageCheckout, "", "")
		ev = s.event(EventCheckout, PageCheckout, "", "")
		ev.CartItems, ev.CartValue = ss.cartItems, round2(ss.cartValue)
		ss.queue = append(ss.queue, ev)
	}
}

// pageView queues a page view and, by chance, a banner impression and a
// click on it.
func (s *Simulator) pageView(ss *session, page, group, product string) {
	s.queue(ss, EventPageView, page, group, product)
	p := s.cat.Probabilities
	if !s.chance(*p.Impression) {
		return
	}
	campaign := s.cat.Campaigns[s.rng.IntN(len(s.cat.Campaigns))]
	ev := s.event(EventImpression, page, group, product)
	ev.CampaignID = campaign
	ss.queue = append(ss.queue, ev)
	if s.chance(*p.CampaignClick) {
		ev := s.event(EventClick, page, group, product)
		ev.CampaignID = campaign
		ss.queue = append(ss.queue, ev)
	}
}

func (s *Simulator) queue(ss *session, typ, page, group, product string) {
	ss.queue = append(ss.queue, s.event(typ, page, group, product))
}

// event returns an event on page at one of its elements, chosen uniformly.
func (s *Simulator) event(typ, page, group, product string) Event {
	pg := s.cat.pages[page]
	sec := pg.Sections[s.rng.IntN(len(pg.Sections))]
	return Event{
		EventType:    typ,
		Page:         page,
		Section:      sec.Name,
		Element:      sec.Elements[s.rng.IntN(len(sec.Elements))],
		ProductGroup: group,
		Product:      product,
	}
}

func (s *Simulator) chance(p float64) bool { return s.rng.Float64() < p }

// uuid returns a version 4 UUID drawn from the simulator's randomness, so
// ids repeat with the seed.
func (s *Simulator) uuid() string {
	var b [16]byte
	hi, lo := s.rng.Uint64(), s.rng.Uint64()
	for i := range 8 {
		b[i] = byte(hi >> (8 * i))
		b[8+i] = byte(lo >> (8 * i))
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// pick returns an index with probability proportional to its weight, given
// cumulative weights whose last element is above 0.
func pick(rng *rand.Rand, cum []float64) int {
	r := rng.Float64() * cum[len(cum)-1]
	i := sort.Search(len(cum), func(i int) bool { return cum[i] > r })
	return min(i, len(cum)-1)
}

func round2(v float64) float64 {
	return math.Round(v*100) / 100
}

// URLClick is one event of the url format: a click on a product group's
// list or on one of its products, as the URL the web store was asked
// for. It is written to the stream as {"url": URL}.
type URLClick struct {
	URL string `json:"url"`
}

// NextURL returns the next click of the url format, built from the
// catalogue's urls templates: a product group drawn by weight, a click on
// its list with probability urls.groupShare and otherwise on a product
// whose id is drawn from the group's productIds, and a user id from 1 to
// users; ids near the middle of their range are drawn more often (see
// ProductGroup.ProductIDs). The catalogue must pass CheckURLFormat.
func (s *Simulator) NextURL() URLClick {
	u := s.cat.URLs
	g := s.cat.ProductGroups[pick(s.rng, s.groupCum)]
	group := strconv.Itoa(g.ID)
	user := strconv.Itoa(s.middling(1, s.cat.Users))
	tmpl, product := u.Product, ""
	if s.chance(*u.GroupShare) {
		tmpl = u.Group
	} else {
		product = strconv.Itoa(s.middling(g.ProductIDs.Min, g.ProductIDs.Max))
	}
	r := strings.NewReplacer("{group}", group, "{product}", product, "{user}", user)
	return URLClick{URL: u.Base + r.Replace(tmpl)}
}

// middling draws an integer in [lo, hi] from a normal distribution
// around the middle of the range with a standard deviation of
// (hi-lo)/(2√2), cut at the ends (a draw outside is drawn again).
func (s *Simulator) middling(lo, hi int) int {
	if hi <= lo {
		return lo
	}
	mean := (float64(lo) + float64(hi)) / 2
	sd := (float64(hi) - float64(lo)) / (2 * math.Sqrt2)
	for range 64 {
		v := math.Round(mean + sd*s.rng.NormFloat64())
		if v >= float64(lo) && v <= float64(hi) {
			return int(v)
		}
	}
	return int(math.Round(mean)) // about 0.16^64: never
}
