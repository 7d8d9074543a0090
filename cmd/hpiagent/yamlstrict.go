package main

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// ConfigError is a configuration error. It names the key (as a path such
// as shelves[1].cipher_suites) and the line of the configuration file it
// is on, so that an operator can go straight to it.
type ConfigError struct {
	// Line is the 1-based line of the key (or of its enclosing mapping
	// when the key is missing); 0 when not known, as for settings given
	// on the command line.
	Line int
	// Key is the key path; empty for errors of the whole document.
	Key string
	// Err is what is wrong.
	Err error
}

// Error formats the error as "line N: key.path: what is wrong".
func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

// Unwrap returns what is wrong.
func (e *ConfigError) Unwrap() error { return e.Err }

// positions maps key paths to the line of the key.
type positions map[string]int

// lineOf returns the line of path or, when path is not in the file, of
// the nearest enclosing key that is.
func (p positions) lineOf(path string) int {
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return p[""]
}

// positioned is implemented by configuration types that want to know
// where they were written (SecretRef, to name its key when the secret
// cannot be read).
type positioned interface {
	setPosition(path string, line int)
}

var unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()

// decodeStrict decodes the YAML document b into v (a pointer to a struct
// with yaml tags), refusing unknown and duplicate keys, and records the
// line of every key in pos. Every error is a *ConfigError.
func decodeStrict(b []byte, v any, pos positions) error {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return &ConfigError{Line: yamlErrLine(err), Err: fmt.Errorf("not valid YAML: %s", yamlErrText(err))}
	}
	if doc.Kind == 0 { // empty document
		return nil
	}
	n := &doc
	if n.Kind == yaml.DocumentNode {
		if len(n.Content) == 0 {
			return nil
		}
		n = n.Content[0]
	}
	pos[""] = n.Line
	return decodeValue(n, reflect.ValueOf(v).Elem(), "", pos, 0)
}

// yamlErrLine digs the line number out of a yaml.v3 syntax error ("yaml:
// line 3: ...").
func yamlErrLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	j := strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	if j < 0 {
		j = len(s)
	}
	l, _ := strconv.Atoi(s[:j])
	return l
}

// yamlErrText is a yaml.v3 syntax error without its "yaml: line N:" prefix.
func yamlErrText(err error) string {
	s := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(s, "line ") {
		if i := strings.Index(s, ": "); i > 0 {
			s = s[i+2:]
		}
	}
	return s
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "something else"
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// decodeValue decodes n into v. depth bounds alias expansion.
func decodeValue(n *yaml.Node, v reflect.Value, path string, pos positions, depth int) error {
	if depth > 32 {
		return &ConfigError{Line: n.Line, Key: path, Err: errors.New("nested too deeply")}
	}
	if n.Kind == yaml.AliasNode {
		return &ConfigError{Line: n.Line, Key: path, Err: errors.New("YAML aliases are not allowed in the configuration; write the value out")}
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalerType) {
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return &ConfigError{Line: n.Line, Key: path, Err: err}
		}
		return nil
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return nil
		}
		nv := reflect.New(v.Type().Elem())
		if err := decodeValue(n, nv.Elem(), path, pos, depth+1); err != nil {
			return err
		}
		v.Set(nv)
		return nil
	case reflect.Struct:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			if v.Type() == reflect.TypeFor[SecretRef]() && n.Kind == yaml.ScalarNode {
				// Most likely the secret itself written inline: never echo it.
				return &ConfigError{Line: n.Line, Key: path, Err: errors.New("want {credential: name}, {file: path} or {prompt: true}; a secret is never written in the configuration file (the value is not shown)")}
			}
			return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("want a mapping of keys, got %s", kindName(n))}
		}
		fields := map[string]int{}
		var names []string
		t := v.Type()
		for i := range t.NumField() {
			tag := strings.Split(t.Field(i).Tag.Get("yaml"), ",")[0]
			if tag == "" || tag == "-" || !t.Field(i).IsExported() {
				continue
			}
			fields[tag] = i
			names = append(names, tag)
		}
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := joinKey(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				return &ConfigError{Line: k.Line, Key: path, Err: errors.New("a key must be a plain string")}
			}
			if l, dup := seen[k.Value]; dup {
				return &ConfigError{Line: k.Line, Key: kp, Err: fmt.Errorf("key given twice (first on line %d)", l)}
			}
			seen[k.Value] = k.Line
			fi, ok := fields[k.Value]
			if !ok {
				sort.Strings(names)
				return &ConfigError{Line: k.Line, Key: kp, Err: fmt.Errorf("unknown key (known here: %s)", strings.Join(names, ", "))}
			}
			pos[kp] = k.Line
			if err := decodeValue(val, v.Field(fi), kp, pos, depth+1); err != nil {
				return err
			}
		}
		if p, ok := v.Addr().Interface().(positioned); ok {
			p.setPosition(path, pos.lineOf(path))
		}
		return nil
	case reflect.Slice:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("want a list, got %s", kindName(n))}
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			ep := fmt.Sprintf("%s[%d]", path, i)
			pos[ep] = e.Line
			if err := decodeValue(e, s.Index(i), ep, pos, depth+1); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.Map:
		if isNull(n) {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("want a mapping, got %s", kindName(n))}
		}
		if v.Type().Key().Kind() != reflect.String {
			return &ConfigError{Line: n.Line, Key: path, Err: errors.New("unsupported map key type")}
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			kp := fmt.Sprintf("%s[%q]", path, k.Value)
			if k.Kind != yaml.ScalarNode {
				return &ConfigError{Line: k.Line, Key: path, Err: errors.New("a key must be a plain string")}
			}
			if l, dup := seen[k.Value]; dup {
				return &ConfigError{Line: k.Line, Key: kp, Err: fmt.Errorf("key given twice (first on line %d)", l)}
			}
			seen[k.Value] = k.Line
			pos[kp] = k.Line
			ev := reflect.New(v.Type().Elem()).Elem()
			if err := decodeValue(val, ev, kp, pos, depth+1); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), ev)
		}
		v.Set(m)
		return nil
	case reflect.String, reflect.Bool, reflect.Int, reflect.Int64, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Float64:
		if n.Kind != yaml.ScalarNode {
			return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("want %s, got %s", typeWord(v.Kind()), kindName(n))}
		}
		if isNull(n) {
			return nil
		}
		if err := n.Decode(v.Addr().Interface()); err != nil {
			return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("%q is not %s", n.Value, typeWord(v.Kind()))}
		}
		return nil
	}
	return &ConfigError{Line: n.Line, Key: path, Err: fmt.Errorf("unsupported configuration type %s", v.Type())}
}

func typeWord(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Float64:
		return "a number"
	case reflect.Uint8, reflect.Uint16, reflect.Uint32:
		return "a non-negative integer in range"
	}
	return "an integer"
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
