package handler

import (
	"bytes"
	"encoding/json"
)

// FunctionError is a handler's report that it failed, in the shape Lambda
// runtimes give an unhandled error: {"errorType": ..., "errorMessage": ...}.
// The whole batch fails.
type FunctionError struct {
	Type    string
	Message string
}

func (e *FunctionError) Error() string {
	switch {
	case e.Type == "":
		return "function error: " + e.Message
	case e.Message == "":
		return "function error: " + e.Type
	}
	return "function error: " + e.Type + ": " + e.Message
}

// functionError returns a *FunctionError when raw is a JSON object with a
// string errorType or errorMessage and no batchItemFailures, else nil.
func functionError(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var v struct {
		ErrorType         *string         `json:"errorType"`
		ErrorMessage      *string         `json:"errorMessage"`
		BatchItemFailures json.RawMessage `json:"batchItemFailures"`
	}
	if json.Unmarshal(raw, &v) != nil || v.BatchItemFailures != nil || (v.ErrorType == nil && v.ErrorMessage == nil) {
		return nil
	}
	e := &FunctionError{}
	if v.ErrorType != nil {
		e.Type = *v.ErrorType
	}
	if v.ErrorMessage != nil {
		e.Message = *v.ErrorMessage
	}
	return e
}
