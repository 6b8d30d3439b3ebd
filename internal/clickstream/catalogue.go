// Package clickstream simulates customers browsing a web store and turns
// their sessions into click events: page views, banner impressions, clicks,
// add-to-cart and checkout. The simulation (Simulator) is deterministic for a
// seed and a clock; the Service runs it behind a small HTTP control API and
// writes the events through a producer.Writer.
package clickstream

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/runnel-dev/runnel/internal/yamlpos"
)

//go:embed default.yaml
var defaultCatalogue []byte

// DefaultCatalogueName is the file name errors in the built-in catalogue
// refer to.
const DefaultCatalogueName = "built-in catalogue"

// Page names every catalogue defines, in the order a session meets them.
const (
	PageHome     = "home"
	PageCategory = "category"
	PageProduct  = "product"
	PageCart     = "cart"
	PageCheckout = "checkout"
)

var requiredPages = []string{PageHome, PageCategory, PageProduct, PageCart, PageCheckout}

// Catalogue is what the simulated store sells and how its visitors behave.
// Load or Parse it; both validate.
type Catalogue struct {
	// Name describes the store; optional.
	Name string `yaml:"name"`
	// Users is the size of the pool user ids are drawn from; at least 1.
	Users int `yaml:"users"`
	// Session sets how long sessions are.
	Session SessionSpec `yaml:"session"`
	// Probabilities of the visitor's choices; every one is required.
	Probabilities Probabilities `yaml:"probabilities"`
	// Campaigns are the ids impressions advertise; required when
	// probabilities.impression is above 0.
	Campaigns []string `yaml:"campaigns"`
	// Pages are home, category, product, cart and checkout, each once.
	Pages []Page `yaml:"pages"`
	// ProductGroups are the store's departments; at least one.
	ProductGroups []ProductGroup `yaml:"productGroups"`
	// URLs shapes the events of the url format; optional (see URLSpec
	// for its defaults).
	URLs URLSpec `yaml:"urls"`

	file  string
	root  *yaml.Node
	pages map[string]*Page
}

// URLSpec shapes the events of the url format: each is a click on a
// product group's list or on one of its products, as a web server's
// request URL. A template's placeholders are {group} (the group's id),
// {product} (a product id drawn from the group's productIds) and {user}
// (a user id from 1 to users).
type URLSpec struct {
	// Base is put before every URL, e.g. "https://store.example.com".
	// Default "".
	Base string `yaml:"base" json:"base"`
	// Group is the URL of a click on a group's list. Default
	// "/api/group/{group}?userid={user}".
	Group string `yaml:"group" json:"group"`
	// Product is the URL of a click on a product; it must hold
	// {product}. Default "/api/group/{group}/product/{product}?userid={user}".
	Product string `yaml:"product" json:"product"`
	// GroupShare is the share of clicks on a group's list, in [0, 1];
	// the others are on a product. Default 0.1.
	GroupShare *float64 `yaml:"groupShare" json:"groupShare"`
}

// Defaults of URLSpec.
const (
	DefaultGroupURL      = "/api/group/{group}?userid={user}"
	DefaultProductURL    = "/api/group/{group}/product/{product}?userid={user}"
	DefaultURLGroupShare = 0.1
)

var urlPlaceholders = []string{"{group}", "{product}", "{user}"}

// IDRange is a range of integer ids, both ends included.
type IDRange struct {
	Min int `yaml:"min" json:"min"`
	Max int `yaml:"max" json:"max"`
}

// SessionSpec sets the length of sessions in browse steps. A step is a
// category page view and, perhaps, a product page view.
type SessionSpec struct {
	// MeanSteps is the mean number of steps (geometric distribution); at
	// least 1.
	MeanSteps float64 `yaml:"meanSteps" json:"meanSteps"`
	// MaxSteps cuts sessions longer than this; at least MeanSteps, at
	// most MaxSessionSteps.
	MaxSteps int `yaml:"maxSteps" json:"maxSteps"`
}

// MaxSessionSteps bounds SessionSpec.MaxSteps: a session's length is
// drawn step by step.
const MaxSessionSteps = 100_000

// Probabilities are the chances of the visitor's choices, each in [0, 1].
type Probabilities struct {
	// Impression: a page view shows a campaign banner.
	Impression *float64 `yaml:"impression" json:"impression"`
	// CampaignClick: a shown banner is clicked.
	CampaignClick *float64 `yaml:"campaignClick" json:"campaignClick"`
	// ProductView: a category page leads to a product page.
	ProductView *float64 `yaml:"productView" json:"productView"`
	// AddToCart: a product page ends with add to cart.
	AddToCart *float64 `yaml:"addToCart" json:"addToCart"`
	// Checkout: a session with a non-empty cart checks out.
	Checkout *float64 `yaml:"checkout" json:"checkout"`
}

// Page is one kind of page and what is on it.
type Page struct {
	Name     string    `yaml:"name"`
	Sections []Section `yaml:"sections"`
}

// Section is a part of a page with the elements a visitor sees or clicks.
type Section struct {
	Name     string   `yaml:"name"`
	Elements []string `yaml:"elements"`
}

// ProductGroup is a department of the store.
type ProductGroup struct {
	Name string `yaml:"name"`
	// ID is the group's number in URLs; at least 1, unique. Default: its
	// position in the list, from 1.
	ID int `yaml:"id"`
	// ProductIDs are the ids of the group's products in URLs; required by
	// the url format. Ids near the middle of the range are drawn more
	// often than those near its ends (a normal distribution around the
	// middle whose standard deviation is about a third of the range, cut
	// at its ends).
	ProductIDs *IDRange `yaml:"productIds"`
	// Weight is the group's share of browse steps, relative to the other
	// groups' weights; required, at least 0.
	Weight   *float64  `yaml:"weight"`
	Products []Product `yaml:"products"`
}

// Product is one article for sale.
type Product struct {
	ID string `yaml:"id"`
	// Weight is the product's share of its group's product views;
	// required, at least 0.
	Weight *float64 `yaml:"weight"`
	// Price is in the store's currency; at least 0.
	Price float64 `yaml:"price"`
}

// File is where the catalogue came from, as errors name it.
func (c *Catalogue) File() string { return c.file }

// GroupProbabilities returns each product group's probability of being
// picked by a browse step, keyed by group name.
func (c *Catalogue) GroupProbabilities() map[string]float64 {
	var total float64
	for _, g := range c.ProductGroups {
		total += *g.Weight
	}
	out := make(map[string]float64, len(c.ProductGroups))
	for _, g := range c.ProductGroups {
		out[g.Name] = *g.Weight / total
	}
	return out
}

// CatalogueError is one problem in a catalogue file.
type CatalogueError = yamlpos.Error

// DefaultCatalogue returns the built-in catalogue.
func DefaultCatalogue() *Catalogue {
	c, err := ParseCatalogue(DefaultCatalogueName, defaultCatalogue)
	if err != nil {
		// The embedded file is tested; this cannot happen in a built binary.
		panic(fmt.Sprintf("clickstream: built-in catalogue: %v", err))
	}
	return c
}

// DefaultCatalogueYAML returns the text of the built-in catalogue.
func DefaultCatalogueYAML() []byte { return bytes.Clone(defaultCatalogue) }

// LoadCatalogue reads and validates the catalogue in path.
func LoadCatalogue(path string) (*Catalogue, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading catalogue: %w", err)
	}
	return ParseCatalogue(path, data)
}

// ParseCatalogue decodes and validates a catalogue; file names it in
// errors. The error joins one *CatalogueError per problem found.
func ParseCatalogue(file string, data []byte) (*Catalogue, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, yamlpos.Syntax(file, err)
	}
	if len(root.Content) == 0 {
		return nil, &CatalogueError{File: file, Msg: "catalogue is empty"}
	}
	c := &Catalogue{file: file}
	if err := yamlpos.Decode(file, &root, c); err != nil {
		return nil, err
	}
	var errs []error
	for _, p := range c.validate() {
		line := yamlpos.Line(root.Content[0], p.path)
		errs = append(errs, &CatalogueError{File: file, Line: line, Field: p.path.String(), Msg: p.msg})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	c.root = root.Content[0]
	for i := range c.ProductGroups {
		if c.ProductGroups[i].ID == 0 {
			c.ProductGroups[i].ID = i + 1
		}
	}
	if c.URLs.Group == "" {
		c.URLs.Group = DefaultGroupURL
	}
	if c.URLs.Product == "" {
		c.URLs.Product = DefaultProductURL
	}
	if c.URLs.GroupShare == nil {
		share := DefaultURLGroupShare
		c.URLs.GroupShare = &share
	}
	c.pages = make(map[string]*Page, len(c.Pages))
	for i := range c.Pages {
		c.pages[c.Pages[i].Name] = &c.Pages[i]
	}
	return c, nil
}

// path is a position in the YAML document: map keys and sequence indexes.
type path = yamlpos.Path

type problem struct {
	path path
	msg  string
}

// validate reports every problem in c.
func (c *Catalogue) validate() []problem {
	var ps []problem
	add := func(p path, format string, args ...any) {
		ps = append(ps, problem{p, fmt.Sprintf(format, args...)})
	}
	if c.Users < 1 {
		add(path{"users"}, "must be at least 1, got %d", c.Users)
	}
	if m := c.Session.MeanSteps; !(m >= 1) || math.IsInf(m, 0) {
		add(path{"session", "meanSteps"}, "must be a number of at least 1, got %v", m)
	}
	if c.Session.MaxSteps < 1 || float64(c.Session.MaxSteps) < c.Session.MeanSteps || c.Session.MaxSteps > MaxSessionSteps {
		add(path{"session", "maxSteps"}, "must be at least 1, at least meanSteps (%v) and at most %d, got %d", c.Session.MeanSteps, MaxSessionSteps, c.Session.MaxSteps)
	}
	probs := []struct {
		name string
		v    *float64
	}{
		{"impression", c.Probabilities.Impression},
		{"campaignClick", c.Probabilities.CampaignClick},
		{"productView", c.Probabilities.ProductView},
		{"addToCart", c.Probabilities.AddToCart},
		{"checkout", c.Probabilities.Checkout},
	}
	for _, p := range probs {
		switch {
		case p.v == nil:
			add(path{"probabilities", p.name}, "is required")
		case !(*p.v >= 0 && *p.v <= 1):
			add(path{"probabilities", p.name}, "must be a probability in [0, 1], got %v", *p.v)
		}
	}
	if imp := c.Probabilities.Impression; imp != nil && *imp > 0 && len(c.Campaigns) == 0 {
		add(path{"campaigns"}, "must list at least one campaign id when probabilities.impression is above 0")
	}
	seenCampaign := map[string]bool{}
	for i, id := range c.Campaigns {
		switch {
		case strings.TrimSpace(id) == "":
			add(path{"campaigns", i}, "must not be empty")
		case seenCampaign[id]:
			add(path{"campaigns", i}, "campaign %q is listed twice", id)
		}
		seenCampaign[id] = true
	}

	seenPage := map[string]bool{}
	for i, pg := range c.Pages {
		pp := path{"pages", i}
		switch {
		case !isRequiredPage(pg.Name):
			add(pp.With("name"), "unknown page %q; pages are %s", pg.Name, strings.Join(requiredPages, ", "))
		case seenPage[pg.Name]:
			add(pp.With("name"), "page %q is defined twice", pg.Name)
		}
		seenPage[pg.Name] = true
		if len(pg.Sections) == 0 {
			add(pp.With("sections"), "page %q needs at least one section", pg.Name)
		}
		for j, s := range pg.Sections {
			sp := pp.With("sections", j)
			if strings.TrimSpace(s.Name) == "" {
				add(sp.With("name"), "must not be empty")
			}
			if len(s.Elements) == 0 {
				add(sp.With("elements"), "section %q needs at least one element", s.Name)
			}
			for k, el := range s.Elements {
				if strings.TrimSpace(el) == "" {
					add(sp.With("elements", k), "must not be empty")
				}
			}
		}
	}
	var missing []string
	for _, name := range requiredPages {
		if !seenPage[name] {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		add(path{"pages"}, "missing page(s) %s", strings.Join(missing, ", "))
	}

	if len(c.ProductGroups) == 0 {
		add(path{"productGroups"}, "must list at least one product group")
	}
	var groupTotal float64
	groupsValid := true
	seenGroup := map[string]bool{}
	seenProduct := map[string]bool{}
	for i, g := range c.ProductGroups {
		gp := path{"productGroups", i}
		checkUnique(add, gp.With("name"), "product group", g.Name, seenGroup)
		if !addWeight(add, gp.With("weight"), g.Weight, &groupTotal) {
			groupsValid = false
		}
		if len(g.Products) == 0 {
			add(gp.With("products"), "product group %q needs at least one product", g.Name)
			continue
		}
		var productTotal float64
		allValid := true
		for j, p := range g.Products {
			pp := gp.With("products", j)
			checkUnique(add, pp.With("id"), "product", p.ID, seenProduct)
			if !addWeight(add, pp.With("weight"), p.Weight, &productTotal) {
				allValid = false
			}
			if !(p.Price >= 0) || math.IsInf(p.Price, 0) {
				add(pp.With("price"), "must be a finite number of at least 0, got %v", p.Price)
			}
		}
		if allValid && productTotal <= 0 {
			add(gp.With("products"), "the weights of product group %q's products add up to 0; at least one must be above 0", g.Name)
		}
	}
	ps = append(ps, c.validateURLs()...)
	if len(c.ProductGroups) > 0 && groupTotal <= 0 && groupsValid {
		add(path{"productGroups"}, "the product group weights add up to 0; at least one must be above 0")
	}
	return ps
}

// validateURLs reports the problems of the url format's fields: the
// templates, group ids and product id ranges.
func (c *Catalogue) validateURLs() []problem {
	var ps []problem
	add := func(p path, format string, args ...any) {
		ps = append(ps, problem{p, fmt.Sprintf(format, args...)})
	}
	for _, t := range []struct{ name, tmpl string }{{"group", c.URLs.Group}, {"product", c.URLs.Product}} {
		if t.tmpl == "" {
			continue
		}
		rest := t.tmpl
		for _, ph := range urlPlaceholders {
			rest = strings.ReplaceAll(rest, ph, "")
		}
		if strings.ContainsAny(rest, "{}") {
			add(path{"urls", t.name}, "unknown placeholder in %q; placeholders are %s", t.tmpl, strings.Join(urlPlaceholders, ", "))
		}
	}
	if c.URLs.Product != "" && !strings.Contains(c.URLs.Product, "{product}") {
		add(path{"urls", "product"}, "%q must hold {product}", c.URLs.Product)
	}
	if strings.ContainsAny(c.URLs.Base, "{}") {
		add(path{"urls", "base"}, "must not hold placeholders, got %q", c.URLs.Base)
	}
	if g := c.URLs.GroupShare; g != nil && !(*g >= 0 && *g <= 1) {
		add(path{"urls", "groupShare"}, "must be a share in [0, 1], got %v", *g)
	}
	seenID := map[int]int{}
	for i, g := range c.ProductGroups {
		gp := path{"productGroups", i}
		id := g.ID
		if id == 0 {
			id = i + 1
		}
		if id < 1 {
			add(gp.With("id"), "must be at least 1, got %d", id)
		} else if j, dup := seenID[id]; dup {
			add(gp.With("id"), "id %d is also product group %d's (ids default to the position in the list, from 1)", id, j+1)
		} else {
			seenID[id] = i
		}
		if r := g.ProductIDs; r != nil && (r.Min < 0 || r.Max < r.Min) {
			add(gp.With("productIds"), "must have 0 <= min <= max, got min %d, max %d", r.Min, r.Max)
		}
	}
	return ps
}

// CheckURLFormat reports what keeps the catalogue from making url events:
// every product group needs productIds. The error joins one
// *CatalogueError per group without them.
func (c *Catalogue) CheckURLFormat() error {
	var errs []error
	for i, g := range c.ProductGroups {
		if g.ProductIDs == nil {
			p := path{"productGroups", i, "productIds"}
			errs = append(errs, &CatalogueError{File: c.file, Line: yamlpos.Line(c.root, p), Field: p.String(),
				Msg: fmt.Sprintf("product group %q needs productIds {min, max} for --format url", g.Name)})
		}
	}
	return errors.Join(errs...)
}

func isRequiredPage(name string) bool { return slices.Contains(requiredPages, name) }

// checkUnique reports an empty or repeated name of a kind; seen holds the
// names defined so far.
func checkUnique(add func(path, string, ...any), p path, kind, name string, seen map[string]bool) {
	switch {
	case strings.TrimSpace(name) == "":
		add(p, "must not be empty")
	case seen[name]:
		add(p, "%s %q is defined twice", kind, name)
	}
	seen[name] = true
}

// addWeight adds a valid weight to total, or reports it; it returns
// whether it was valid.
func addWeight(add func(path, string, ...any), p path, w *float64, total *float64) bool {
	v, ok := checkWeight(w)
	if !ok {
		add(p, "%s", weightProblem(w))
		return false
	}
	*total += v
	return true
}

func checkWeight(w *float64) (float64, bool) {
	if w == nil || !(*w >= 0) || math.IsInf(*w, 0) {
		return 0, false
	}
	return *w, true
}

func weightProblem(w *float64) string {
	if w == nil {
		return "is required"
	}
	return fmt.Sprintf("must be a finite number of at least 0, got %v", *w)
}
