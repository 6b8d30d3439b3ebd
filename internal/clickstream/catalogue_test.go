package clickstream

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
		{"unknown field", "users: 3\ncolour: red\n", 2, "field colour not found"},
		{"wrong type", "users: 3\nsession:\n  maxSteps: many\n", 3, "cannot unmarshal"},
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
