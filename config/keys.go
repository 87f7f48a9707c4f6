package config

import (
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// unknownKeys walks the raw document against Config's json tags and reports
// every key that the typed decode would silently drop, with its JSON path:
// object keys are joined with dots, array elements as name[i].
func unknownKeys(data []byte) []error {
	var raw any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil // the typed decode reports syntax errors
	}
	var errs []error
	walk(raw, reflect.TypeOf(Config{}), "", &errs)
	return errs
}

func walk(v any, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if arr, ok := v.([]any); ok {
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, e := range arr {
				walk(e, t.Elem(), fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
		return
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return // scalars and type mismatches are the typed decoder's job
	}
	switch t.Kind() {
	case reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "" || name == "-" {
				continue
			}
			fields[name] = f.Type
		}
		for _, k := range sortedKeys(obj) {
			ft, ok := fields[k]
			if !ok {
				known := sortedKeys(fields)
				*errs = append(*errs, fmt.Errorf("%s: unknown key (known keys: %s)", join(path, k), strings.Join(known, ", ")))
				continue
			}
			walk(obj[k], ft, join(path, k), errs)
		}
	case reflect.Map:
		for _, k := range sortedKeys(obj) {
			walk(obj[k], t.Elem(), join(path, k), errs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
