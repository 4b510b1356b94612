package admin

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/drawbridge-gw/drawbridge/internal/store"
)

// ImportKey is one key to import, as read from an API Gateway key file
// (CSV) or from JSON.
type ImportKey struct {
	Name        string
	Value       string
	Description string
	Enabled     bool
	// Plans are candidate plans, in order; the first that exists in the
	// store is used (API Gateway's UsagePlanIds column lists several).
	Plans []string
	// Where locates the key in the input for messages ("line 3", "item 2").
	Where string
}

// ImportResult is the answer to POST /v1/keys/import.
type ImportResult struct {
	Imported int       `json:"imported"`
	Skipped  []Skipped `json:"skipped"`
}

// Skipped is a key that import left alone, and why.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// ParseImport reads keys from data as contentType says: text/csv is API
// Gateway's key file format (import-api-keys); application/json is either
// an array of {name, value, description, enabled, plan} or the output of
// "aws apigateway get-api-keys --include-values" ({"items": [...]}).
func ParseImport(contentType string, data []byte) ([]ImportKey, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, errorf(http.StatusUnsupportedMediaType, "content type %q: want text/csv or application/json", contentType)
	}
	switch mt {
	case "text/csv":
		return parseCSV(data)
	case "application/json":
		return parseJSON(data)
	}
	return nil, errorf(http.StatusUnsupportedMediaType, "content type %q: want text/csv or application/json", mt)
}

// parseCSV reads API Gateway's key file format: a header row naming Name
// and Key (and optionally Description, Enabled, UsagePlanIds) in any order
// and any case; other columns are ignored, as API Gateway ignores them.
func parseCSV(data []byte) ([]ImportKey, error) {
	data = bytes.TrimPrefix(data, []byte("\ufeff")) // spreadsheet exports start with a BOM
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if err == io.EOF {
		return nil, errorf(http.StatusBadRequest, "csv: empty file; want a header row with Name and Key columns")
	}
	if err != nil {
		return nil, errorf(http.StatusBadRequest, "csv: %v", err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(h))
		if _, dup := col[h]; dup && h != "" {
			return nil, errorf(http.StatusBadRequest, "csv: column %q appears twice in the header", header[i])
		}
		col[h] = i
	}
	for _, need := range []string{"name", "key"} {
		if _, ok := col[need]; !ok {
			return nil, errorf(http.StatusBadRequest, "csv: the header row has no %s column; want at least Name,Key", need)
		}
	}
	var keys []ImportKey
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, errorf(http.StatusBadRequest, "csv: %v", err)
		}
		line, _ := r.FieldPos(0)
		if len(rec) > len(header) {
			rec = joinSingleQuoted(rec)
		}
		raw := func(name string) string {
			if i, ok := col[name]; ok && i < len(rec) {
				return rec[i]
			}
			return ""
		}
		field := func(name string) string { return strings.TrimSpace(raw(name)) }
		if len(rec) == 1 && field("name") == "" && raw("key") == "" {
			continue // a blank line
		}
		k := ImportKey{
			Name:        field("name"),
			Value:       raw("key"), // exactly as given: checkValue refuses spaces
			Description: field("description"),
			Enabled:     true,
			Where:       fmt.Sprintf("line %d", line),
		}
		if e := field("enabled"); e != "" {
			b, err := strconv.ParseBool(e)
			if err != nil {
				return nil, errorf(http.StatusBadRequest, "csv line %d: Enabled %q: want true or false", line, e)
			}
			k.Enabled = b
		}
		for _, p := range strings.Split(field("usageplanids"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				k.Plans = append(k.Plans, p)
			}
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// joinSingleQuoted rejoins a field that API Gateway's format allows to be
// quoted with single quotes ('plan1,plan2'), which encoding/csv split at
// its commas, and drops the quotes. It is only called on a row with more
// fields than the header.
func joinSingleQuoted(rec []string) []string {
	out := make([]string, 0, len(rec))
	for i := 0; i < len(rec); i++ {
		if !strings.HasPrefix(strings.TrimSpace(rec[i]), "'") {
			out = append(out, rec[i])
			continue
		}
		joined := strings.TrimSpace(rec[i])
		for !(len(joined) >= 2 && strings.HasSuffix(joined, "'")) && i+1 < len(rec) {
			i++
			joined += "," + strings.TrimSpace(rec[i])
		}
		out = append(out, strings.TrimSuffix(strings.TrimPrefix(joined, "'"), "'"))
	}
	return out
}

// jsonImportKey is one key of the plain JSON import shape.
type jsonImportKey struct {
	Name        string `json:"name"`
	Value       string `json:"value"`
	Description string `json:"description"`
	Enabled     *bool  `json:"enabled"`
	Plan        string `json:"plan"`
}

// awsAPIKey is one item of "aws apigateway get-api-keys --include-values".
// Fields drawbridge has no use for are accepted and ignored, so that the
// command's output imports as it is.
type awsAPIKey struct {
	ID              string          `json:"id"`
	Value           string          `json:"value"`
	Name            string          `json:"name"`
	CustomerID      string          `json:"customerId"`
	Description     string          `json:"description"`
	Enabled         *bool           `json:"enabled"`
	CreatedDate     json.RawMessage `json:"createdDate"`
	LastUpdatedDate json.RawMessage `json:"lastUpdatedDate"`
	StageKeys       json.RawMessage `json:"stageKeys"`
	Tags            json.RawMessage `json:"tags"`
}

type awsAPIKeys struct {
	Items     []awsAPIKey     `json:"items"`
	Position  json.RawMessage `json:"position"`
	Warnings  json.RawMessage `json:"warnings"`
	NextToken json.RawMessage `json:"NextToken"`
}

func parseJSON(data []byte) ([]ImportKey, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, errorf(http.StatusBadRequest, "json: empty body; want an array of keys or {\"items\": [...]}")
	}
	var keys []ImportKey
	switch trimmed[0] {
	case '[':
		var in []jsonImportKey
		if err := decodeStrict(bytes.NewReader(trimmed), &in); err != nil {
			return nil, err
		}
		for i, j := range in {
			k := ImportKey{Name: j.Name, Value: j.Value, Description: j.Description, Enabled: true, Where: fmt.Sprintf("item %d", i+1)}
			if j.Enabled != nil {
				k.Enabled = *j.Enabled
			}
			if j.Plan != "" {
				k.Plans = []string{j.Plan}
			}
			keys = append(keys, k)
		}
	case '{':
		var in awsAPIKeys
		if err := decodeStrict(bytes.NewReader(trimmed), &in); err != nil {
			return nil, err
		}
		if in.Items == nil {
			return nil, errorf(http.StatusBadRequest, "json: no \"items\" array; want the output of aws apigateway get-api-keys --include-values")
		}
		for i, a := range in.Items {
			k := ImportKey{Name: a.Name, Value: a.Value, Description: a.Description, Enabled: true, Where: fmt.Sprintf("item %d", i+1)}
			if a.Enabled != nil {
				k.Enabled = *a.Enabled
			}
			keys = append(keys, k)
		}
	default:
		return nil, errorf(http.StatusBadRequest, "json: want an array of keys or {\"items\": [...]}")
	}
	return keys, nil
}

// ImportKeys creates keys, keeping their values exactly so that partners
// change nothing. The whole input is checked before anything is stored:
// one bad key fails the import. Keys whose name exists already are skipped,
// never overwritten. defaultPlan applies to keys that name no plan, or none
// that exists in the store.
func ImportKeys(ctx context.Context, st store.Store, keys []ImportKey, defaultPlan string, now time.Time) (ImportResult, error) {
	if defaultPlan != "" {
		if err := checkPlan(ctx, st, defaultPlan); err != nil {
			return ImportResult{}, err
		}
	}
	plans := map[string]bool{} // plan name: exists
	planOf := func(k ImportKey) (string, error) {
		for _, p := range k.Plans {
			exists, seen := plans[p]
			if !seen {
				err := checkPlan(ctx, st, p)
				if err != nil && StatusOf(err) != http.StatusBadRequest {
					return "", err
				}
				exists = err == nil
				plans[p] = exists
			}
			if exists {
				return p, nil
			}
		}
		if len(k.Plans) > 0 && defaultPlan == "" {
			return "", errorf(http.StatusBadRequest, "%s: key %q: none of its usage plans (%s) exists in the store; create one of them, or name a default plan for the import", k.Where, k.Name, strings.Join(k.Plans, ", "))
		}
		return defaultPlan, nil
	}

	var problems []string
	names := map[string]string{}
	values := map[string]string{}
	reqs := make([]CreateKeyRequest, 0, len(keys))
	for _, k := range keys {
		var errs []error
		if err := checkName(k.Name); err != nil {
			errs = append(errs, err)
		} else if first, dup := names[k.Name]; dup {
			errs = append(errs, fmt.Errorf("key name %q is also at %s", k.Name, first))
		} else {
			names[k.Name] = k.Where
		}
		if err := checkValue(k.Value); err != nil {
			errs = append(errs, err)
		} else if first, dup := values[k.Value]; dup {
			errs = append(errs, fmt.Errorf("the same key value is also at %s", first))
		} else {
			values[k.Value] = k.Where
		}
		if err := checkDescription(k.Description); err != nil {
			errs = append(errs, err)
		}
		plan, err := planOf(k)
		switch {
		case err != nil:
			if StatusOf(err) != http.StatusBadRequest {
				return ImportResult{}, err
			}
			problems = append(problems, err.Error())
		case plan == "" && !keyExists(ctx, st, k.Name):
			// Checked here, with everything else, so that no key of a
			// bad file is imported (a key that exists is skipped anyway).
			problems = append(problems, fmt.Sprintf("%s: key %q names no usage plan; a key in no plan is refused, so name a default plan for the import", k.Where, k.Name))
		}
		for _, e := range errs {
			problems = append(problems, fmt.Sprintf("%s: %v", k.Where, e))
		}
		enabled := k.Enabled
		reqs = append(reqs, CreateKeyRequest{Name: k.Name, Value: k.Value, Description: k.Description, Plan: plan, Enabled: &enabled})
	}
	if len(problems) > 0 {
		return ImportResult{}, errorf(http.StatusBadRequest, "importing keys: %s", strings.Join(problems, "; "))
	}

	res := ImportResult{Skipped: []Skipped{}}
	for _, req := range reqs {
		if _, err := st.KeyByName(ctx, req.Name); err == nil {
			res.Skipped = append(res.Skipped, Skipped{Name: req.Name, Reason: "a key with this name exists"})
			continue
		} else if !errors.Is(err, store.ErrNotFound) {
			return res, fmt.Errorf("importing key %q: %w", req.Name, err)
		}
		if _, _, err := CreateKey(ctx, st, req, now); err != nil {
			if errors.Is(err, store.ErrExists) {
				res.Skipped = append(res.Skipped, Skipped{Name: req.Name, Reason: "another key has this value, or this name"})
				continue
			}
			return res, fmt.Errorf("importing key %q after %d imported: %w", req.Name, res.Imported, err)
		}
		res.Imported++
	}
	return res, nil
}

func keyExists(ctx context.Context, st store.Store, name string) bool {
	_, err := st.KeyByName(ctx, name)
	return err == nil
}
