package api

import (
	"encoding/json"
	"path"
	"reflect"
	"strings"
	"time"
)

// schemas builds JSON Schemas (OpenAPI 3.1's dialect) of Go types by
// reflection, as encoding/json encodes them: a struct's fields by their
// json tags, omitempty and omitzero fields optional, time.Time a
// date-time string, []byte a base64 string, json.RawMessage any JSON.
// Named structs go into components once and are referred to by $ref.
type schemas struct {
	components map[string]any
	// overrides replace the schema of one field: "Type.json_name".
	overrides map[string]any
	named     map[string]reflect.Type // the type behind each component
}

var (
	timeType = reflect.TypeFor[time.Time]()
	rawType  = reflect.TypeFor[json.RawMessage]()
)

func ref(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }

// of returns the schema of v's type (v is a zero value, or a reflect.Type).
func (s *schemas) of(v any) map[string]any {
	t, ok := v.(reflect.Type)
	if !ok {
		t = reflect.TypeOf(v)
	}
	return s.schema(t)
}

func (s *schemas) schema(t reflect.Type) map[string]any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == rawType:
		return map[string]any{} // any JSON value
	}
	switch t.Kind() {
	case reflect.Pointer:
		return map[string]any{"anyOf": []any{s.schema(t.Elem()), map[string]any{"type": "null"}}}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}
		}
		return map[string]any{"type": "array", "items": s.schema(t.Elem())}
	case reflect.Array:
		return map[string]any{"type": "array", "items": s.schema(t.Elem()), "minItems": t.Len(), "maxItems": t.Len()}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.schema(t.Elem())}
	case reflect.Interface:
		return map[string]any{}
	case reflect.Struct:
		if t.Name() == "" {
			return s.object(t)
		}
		name := componentName(t)
		if s.named == nil {
			s.named = map[string]reflect.Type{}
		}
		if prev, ok := s.named[name]; ok && prev != t {
			panic("api: two wire types named " + name + ": " + prev.String() + " and " + t.String())
		}
		s.named[name] = t
		if _, done := s.components[name]; !done {
			s.components[name] = nil // placeholder: a type may refer to itself
			s.components[name] = s.object(t)
		}
		return ref(name)
	}
	panic("api: no JSON schema for " + t.String())
}

// componentName names a struct's schema: apitype's by their own names,
// other packages' prefixed with the package's (audit.Egress: AuditEgress),
// so wire types of two packages never collide.
func componentName(t reflect.Type) string {
	pkg := path.Base(t.PkgPath())
	if pkg == "apitype" || pkg == "." {
		return t.Name()
	}
	return strings.ToUpper(pkg[:1]) + pkg[1:] + t.Name()
}

// object is a struct's schema: its fields as encoding/json sees them.
func (s *schemas) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for f := range fields(t) {
		name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		sch, ok := s.overrides[t.Name()+"."+name]
		if !ok {
			sch = s.schema(f.Type)
		}
		props[name] = sch
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// fields yields t's encoded fields, embedded structs' fields inlined.
func fields(t reflect.Type) func(yield func(reflect.StructField) bool) {
	return func(yield func(reflect.StructField) bool) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" || !f.IsExported() && !f.Anonymous {
				continue
			}
			if f.Anonymous && tag == "" && f.Type.Kind() == reflect.Struct {
				for g := range fields(f.Type) {
					if !yield(g) {
						return
					}
				}
				continue
			}
			if !yield(f) {
				return
			}
		}
	}
}
