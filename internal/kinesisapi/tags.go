package kinesisapi

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// tagsEngine is the part of the engine the tag actions call.
type tagsEngine interface {
	AddTags(ctx context.Context, name string, tags map[string]string) error
	RemoveTags(ctx context.Context, name string, keys []string) error
	Tags(name string) (map[string]string, error)
}

const (
	maxTagsPerCall   = 10
	maxTagKeyLen     = 128
	maxTagValueLen   = 256
	defaultListTags  = 50
	maxListTagsLimit = 50
)

// checkTagMap checks a Tags map: its size and each key (1–128 characters)
// and value (0–256 characters).
func checkTagMap(v *violations, field string, tags map[string]string, present, required bool, lo, hi int) {
	v.count(field, javaMap(tags), len(tags), present, required, lo, hi)
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		if n := utf8.RuneCountInString(k); n < 1 || n > maxTagKeyLen {
			v.add(k, field, fmt.Sprintf("Map keys must satisfy constraint: [Member must have length less than or equal to %d, Member must have length greater than or equal to 1]", maxTagKeyLen))
		}
		if utf8.RuneCountInString(tags[k]) > maxTagValueLen {
			v.add(tags[k], field, fmt.Sprintf("Map value must satisfy constraint: [Member must have length less than or equal to %d]", maxTagValueLen))
		}
	}
}

// checkTagChars refuses a tag key or value with a character Kinesis does
// not store: it takes Unicode letters and digits, the space and
// _ . / = + - @ : only (not '%', though the API reference lists it, nor
// tabs, line breaks, ';' or ',').
func checkTagChars(tags map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		for _, s := range []string{k, tags[k]} {
			if i := strings.IndexFunc(s, func(r rune) bool { return !validTagRune(r) }); i >= 0 {
				r, _ := utf8.DecodeRuneInString(s[i:])
				return invalidArgument("Some tags contain invalid characters (%q in tag %q). Valid characters: Unicode letters, digits, white space, _ . / = + - @ :.", r, k)
			}
		}
	}
	return nil
}

func validTagRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || strings.ContainsRune(" _./=+-@:", r)
}

// AddTagsToStream

type addTagsRequest struct {
	streamRef
	Tags map[string]string `json:"Tags"`
}

func (r *addTagsRequest) validate() error {
	var v violations
	r.check(&v)
	checkTagMap(&v, "tags", r.Tags, r.Tags != nil, true, 1, maxTagsPerCall)
	if err := v.err(); err != nil {
		return err
	}
	if err := r.require(); err != nil {
		return err
	}
	return checkTagChars(r.Tags)
}

func (h *Handler) addTags(ctx context.Context, r *addTagsRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.AddTags(ctx, name, r.Tags)
}

// RemoveTagsFromStream

type removeTagsRequest struct {
	streamRef
	TagKeys []string `json:"TagKeys"`
}

func (r *removeTagsRequest) validate() error {
	var v violations
	r.check(&v)
	v.count("tagKeys", javaList(r.TagKeys), len(r.TagKeys), r.TagKeys != nil, true, 1, maxTagsPerCall)
	for i, k := range r.TagKeys {
		v.str(fmt.Sprintf("tagKeys.%d.member", i+1), &k, tagKeyRule)
	}
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) removeTags(ctx context.Context, r *removeTagsRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	return nil, h.svc.RemoveTags(ctx, name, r.TagKeys)
}

// ListTagsForStream

type listTagsRequest struct {
	streamRef
	ExclusiveStartTagKey *string `json:"ExclusiveStartTagKey"`
	Limit                *int    `json:"Limit"`
}

func (r *listTagsRequest) validate() error {
	var v violations
	r.check(&v)
	v.str("exclusiveStartTagKey", r.ExclusiveStartTagKey, tagKeyRule)
	v.intRange("limit", r.Limit, false, 1, maxListTagsLimit)
	if err := v.err(); err != nil {
		return err
	}
	return r.require()
}

func (h *Handler) listTags(ctx context.Context, r *listTagsRequest) (any, error) {
	name, err := h.streamName(ctx, r.streamRef)
	if err != nil {
		return nil, err
	}
	tags, err := h.svc.Tags(name)
	if err != nil {
		return nil, err
	}
	keys := slices.Sorted(maps.Keys(tags))
	if start := deref(r.ExclusiveStartTagKey, ""); start != "" {
		i, found := slices.BinarySearch(keys, start)
		if found {
			i++
		}
		keys = keys[i:]
	}
	limit := deref(r.Limit, defaultListTags)
	more := len(keys) > limit
	if more {
		keys = keys[:limit]
	}
	out := struct {
		Tags        []tag `json:"Tags"`
		HasMoreTags bool  `json:"HasMoreTags"`
	}{Tags: make([]tag, len(keys)), HasMoreTags: more}
	for i, k := range keys {
		out.Tags[i] = tag{Key: k, Value: tags[k]}
	}
	return out, nil
}
