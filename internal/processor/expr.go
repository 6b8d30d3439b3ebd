package processor

import "encoding/json"

// ExprEnv converts decoded fields for expressions: json.Number becomes an
// int when integral, else a float64, so arithmetic and comparisons work.
func ExprEnv(fields map[string]any) map[string]any {
	out := make(map[string]any, len(fields))
	for k, v := range fields {
		out[k] = exprValue(v)
	}
	return out
}

func exprValue(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return x.String()
	case map[string]any:
		return ExprEnv(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = exprValue(e)
		}
		return out
	}
	return v
}
