package clickstream

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestDefaultCatalogueIsValid(t *testing.T) {
	c := DefaultCatalogue()
	require.Equal(t, DefaultCatalogueName, c.File())
	require.GreaterOrEqual(t, len(c.ProductGroups), 5)
	require.LessOrEqual(t, len(c.ProductGroups), 8)
	var sum float64
	for _, p := range c.GroupProbabilities() {
		sum += p
	}
	require.InDelta(t, 1, sum, 1e-9)
}

func TestLoadCatalogueFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "store.yaml")
	require.NoError(t, os.WriteFile(path, DefaultCatalogueYAML(), 0o600))
	c, err := LoadCatalogue(path)
	require.NoError(t, err)
	require.Equal(t, path, c.File())
	require.Equal(t, DefaultCatalogue().ProductGroups, c.ProductGroups)

	_, err = LoadCatalogue(filepath.Join(t.TempDir(), "missing.yaml"))
	require.ErrorIs(t, err, os.ErrNotExist)
}

// A catalogue with one problem per line where noted.
const badCatalogue = `name: broken store
users: 0
session:
  meanSteps: 0.5
  maxSteps: 0
probabilities:
  impression: 1.5
  campaignClick: -0.1
  productView: 0.7
  addToCart: 0.2
campaigns: [spring, "", spring]
pages:
  - name: home
    sections:
      - name: hero
        elements: [banner, ""]
  - name: category
    sections: []
  - name: basket
    sections:
      - {name: items, elements: [remove]}
productGroups:
  - name: tents
    weight: -3
    products:
      - {id: tent-1, weight: 1, price: 10}
  - name: bags
    products:
      - {id: tent-1, weight: -1, price: -5}
  - name: tents
    weight: 1
    products: []
  - name: zero
    weight: 1
    products:
      - {id: z-1, weight: 0, price: 1}
`

func TestCatalogueValidationNamesLineAndField(t *testing.T) {
	_, err := ParseCatalogue("store.yaml", []byte(badCatalogue))
	require.Error(t, err)
	want := []struct {
		line  int
		field string
		msg   string
	}{
		{2, "users", "at least 1"},
		{4, "session.meanSteps", "at least 1"},
		{5, "session.maxSteps", "at least 1"},
		{7, "probabilities.impression", "[0, 1], got 1.5"},
		{8, "probabilities.campaignClick", "[0, 1], got -0.1"},
		{6, "probabilities.checkout", "is required"},
		{11, "campaigns[1]", "must not be empty"},
		{11, "campaigns[2]", `"spring" is listed twice`},
		{16, "pages[0].sections[0].elements[1]", "must not be empty"},
		{18, "pages[1].sections", "at least one section"},
		{19, "pages[2].name", `unknown page "basket"`},
		{12, "pages", "missing page(s) product, cart, checkout"},
		{24, "productGroups[0].weight", "got -3"},
		{27, "productGroups[1].weight", "is required"},
		{29, "productGroups[1].products[0].id", `"tent-1" is defined twice`},
		{29, "productGroups[1].products[0].weight", "got -1"},
		{29, "productGroups[1].products[0].price", "got -5"},
		{30, "productGroups[2].name", `"tents" is defined twice`},
		{32, "productGroups[2].products", "at least one product"},
		{35, "productGroups[3].products", "add up to 0"},
	}
	var ces []*CatalogueError
	for _, e := range unjoin(err) {
		var ce *CatalogueError
		require.True(t, errors.As(e, &ce), "%v is not a CatalogueError", e)
		ces = append(ces, ce)
	}
	for _, w := range want {
		t.Run(w.field, func(t *testing.T) {
			for _, ce := range ces {
				if ce.Field == w.field && strings.Contains(ce.Msg, w.msg) {
					require.Equal(t, "store.yaml", ce.File)
					require.Equal(t, w.line, ce.Line, "line of %s", ce)
					require.True(t, strings.HasPrefix(ce.Error(), "store.yaml:"), ce.Error())
					return
				}
			}
			t.Errorf("no error for %s containing %q; got:\n%v", w.field, w.msg, err)
		})
	}
	require.Len(t, ces, len(want), "errors:\n%v", err)
}

func TestCatalogueDecodeErrorsNameLine(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		line       int
		msg        string
	}{
		{"unknown field", "users: 3\ncolour: red\n", 2, "unknown field; known fields are name, users"},
		{"wrong type", "users: 3\nsession:\n  maxSteps: many\n", 3, `must be an integer, got the string "many"`},
		{"syntax", "users: 3\npages: [\n", 2, "did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalogue("c.yaml", []byte(tc.yaml))
			var ce *CatalogueError
			require.ErrorAs(t, err, &ce)
			require.Equal(t, "c.yaml", ce.File)
			require.Equal(t, tc.line, ce.Line, "%v", err)
			require.Contains(t, ce.Msg, tc.msg)
		})
	}
	_, err := ParseCatalogue("empty.yaml", nil)
	require.ErrorContains(t, err, "empty.yaml: catalogue is empty")
}

func TestCatalogueRejectsNonFiniteNumbers(t *testing.T) {
	y := strings.Replace(string(DefaultCatalogueYAML()), "weight: 20", "weight: .inf", 1)
	y = strings.Replace(y, "addToCart: 0.18", "addToCart: .nan", 1)
	_, err := ParseCatalogue("c.yaml", []byte(y))
	require.ErrorContains(t, err, "productGroups[0].weight: must be a finite number")
	require.ErrorContains(t, err, "probabilities.addToCart: must be a probability in [0, 1], got NaN")
}

// unjoin flattens errors.Join trees.
func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

func TestCatalogueURLFieldsAreChecked(t *testing.T) {
	y := string(DefaultCatalogueYAML())
	for _, r := range [][2]string{
		{"group: /api/group/{group}?userid={user}", "group: /api/group/{group}?userid={user}&ref={item}"},
		{"product: /api/group/{group}/product/{product}?userid={user}", "product: /api/group/{group}?userid={user}"},
		{"groupShare: 0.1", "groupShare: 1.5"},
		{"id: 2\n", "id: 1\n"},
		{"productIds: {min: 3001, max: 3150}", "productIds: {min: 3150, max: 3001}"},
	} {
		require.Contains(t, y, r[0])
		y = strings.Replace(y, r[0], r[1], 1)
	}
	_, err := ParseCatalogue("c.yaml", []byte(y))
	require.Error(t, err)
	for _, want := range []string{
		`urls.group: unknown placeholder in "/api/group/{group}?userid={user}&ref={item}"`,
		`urls.product: "/api/group/{group}?userid={user}" must hold {product}`,
		"urls.groupShare: must be a share in [0, 1], got 1.5",
		"productGroups[1].id: id 1 is also product group 1's",
		"productGroups[2].productIds: must have 0 <= min <= max, got min 3150, max 3001",
	} {
		require.ErrorContains(t, err, want)
	}
	require.Len(t, unjoin(err), 5, "%v", err)

	// Without urls and ids the defaults apply; the url format then needs
	// every group's productIds, and says which group lacks them where.
	y = strings.Replace(string(DefaultCatalogueYAML()), "    productIds: {min: 4001, max: 4400}\n", "", 1)
	c, err := ParseCatalogue("c.yaml", []byte(y))
	require.NoError(t, err)
	require.Equal(t, 4, c.ProductGroups[3].ID)
	err = c.CheckURLFormat()
	var ce *CatalogueError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, "productGroups[3].productIds", ce.Field)
	require.Equal(t, strings.Count(y[:strings.Index(y, "name: footwear")], "\n")+1, ce.Line, "the group's line")
	require.ErrorContains(t, err, `product group "footwear" needs productIds {min, max} for --format url`)

	c, err = ParseCatalogue("c.yaml", []byte(badCatalogueURLDefaults))
	require.NoError(t, err)
	require.Equal(t, DefaultGroupURL, c.URLs.Group)
	require.Equal(t, DefaultProductURL, c.URLs.Product)
	require.Equal(t, DefaultURLGroupShare, *c.URLs.GroupShare)
	require.Equal(t, []int{1, 2}, []int{c.ProductGroups[0].ID, c.ProductGroups[1].ID})
}

// badCatalogueURLDefaults is a valid catalogue that sets nothing of the
// url format but productIds.
const badCatalogueURLDefaults = `users: 10
session: {meanSteps: 2, maxSteps: 4}
probabilities: {impression: 0, campaignClick: 0, productView: 1, addToCart: 0, checkout: 0}
pages:
  - {name: home, sections: [{name: s, elements: [e]}]}
  - {name: category, sections: [{name: s, elements: [e]}]}
  - {name: product, sections: [{name: s, elements: [e]}]}
  - {name: cart, sections: [{name: s, elements: [e]}]}
  - {name: checkout, sections: [{name: s, elements: [e]}]}
productGroups:
  - {name: books, weight: 3, productIds: {min: 2001, max: 2100}, products: [{id: b, weight: 1}]}
  - {name: movies, weight: 7, productIds: {min: 1, max: 1000}, products: [{id: m, weight: 1}]}
`

// FuzzParseCatalogue feeds ParseCatalogue arbitrary documents: it never
// panics, and a catalogue it accepts can make events of both formats
// (the url format when CheckURLFormat passes).
func FuzzParseCatalogue(f *testing.F) {
	// Small seeds: the fuzzer minimises every input that finds new
	// coverage, which takes long for a file the size of the built-in
	// catalogue (checked by the tests above).
	f.Add([]byte(badCatalogueURLDefaults))
	f.Add([]byte("urls: {group: '{group}{', groupShare: -1}\nproductGroups: [{name: a, id: -3, productIds: {min: 5, max: 1}}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCatalogue("fuzz.yaml", data)
		if err != nil {
			return
		}
		sim := NewSimulator(c, 1, 2, stepClock(epoch, time.Millisecond))
		for range 20 {
			sim.Next()
		}
		if c.CheckURLFormat() != nil {
			return
		}
		for range 20 {
			if u := sim.NextURL().URL; !strings.HasPrefix(u, c.URLs.Base) {
				t.Fatalf("url %q without the base %q", u, c.URLs.Base)
			}
		}
	})
}
