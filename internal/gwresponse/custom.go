package gwresponse

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// Custom replaces a gateway response type's answer, as API Gateway's
// gateway responses (x-amazon-apigateway-gateway-responses) do. Zero
// fields keep the default's.
type Custom struct {
	// Status replaces the status code; 0 keeps the default.
	Status int
	// Headers are added to the answer (gatewayresponse.header.*).
	Headers map[string]string
	// Body is a template for the JSON body; "" keeps the default. In it
	// $context.error.messageString is the default message as a JSON
	// string (with quotes), $context.error.message the message as is,
	// $context.error.responseType the type and $context.requestId the
	// request's x-amzn-RequestId.
	Body string

	// body is Body split at its $context variables, by Customs.Middleware
	// when the gateway is built, so that an answer is a few appends.
	body []templatePart
}

// templatePart is literal text followed by one variable (or none).
type templatePart struct {
	text string
	v    templateVar
}

type templateVar uint8

const (
	varNone templateVar = iota
	varMessageString
	varMessage
	varResponseType
	varRequestID
)

// templateVars are the variables a body may use, longest first where one
// is a prefix of another ($context.error.message of ...messageString).
var templateVars = []struct {
	name string
	v    templateVar
}{
	{"$context.error.messageString", varMessageString},
	{"$context.error.message", varMessage},
	{"$context.error.responseType", varResponseType},
	{"$context.requestId", varRequestID},
}

// splitTemplate splits body at its variables.
func splitTemplate(body string) []templatePart {
	var parts []templatePart
	start := 0
	for i := 0; i < len(body); {
		j := strings.IndexByte(body[i:], '$')
		if j < 0 {
			break
		}
		i += j
		matched := false
		for _, tv := range templateVars {
			if strings.HasPrefix(body[i:], tv.name) {
				parts = append(parts, templatePart{text: body[start:i], v: tv.v})
				i += len(tv.name)
				start = i
				matched = true
				break
			}
		}
		if !matched {
			i++
		}
	}
	return append(parts, templatePart{text: body[start:]})
}

// render writes the template with the answer's values.
func render(parts []templatePart, msg string, typ Type, requestID string) string {
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.text)
		switch p.v {
		case varMessageString:
			quoted, _ := json.Marshal(msg) // a string always marshals
			b.Write(quoted)
		case varMessage:
			b.WriteString(msg)
		case varResponseType:
			b.WriteString(string(typ))
		case varRequestID:
			b.WriteString(requestID)
		}
	}
	return b.String()
}

// Customs are the customized types of one gateway. A customized
// DEFAULT_4XX or DEFAULT_5XX applies to every type of that status class
// that is not customized itself, as in API Gateway.
type Customs map[Type]*Custom

// Middleware makes every gateway response written under next use c. It
// returns next unchanged when c is empty.
func (c Customs) Middleware(next http.Handler) http.Handler {
	if len(c) == 0 {
		return next
	}
	// Templates are split once here, into copies: c may be shared (a
	// config's, or a test's across parallel handlers) and is not written.
	prepared := make(Customs, len(c))
	for t, cu := range c {
		if cu == nil {
			continue
		}
		cp := *cu
		if cp.Body != "" {
			cp.body = splitTemplate(cp.Body)
		}
		// Config refuses framing headers (CheckHeader); dropping any
		// here keeps them out whatever made c.
		cp.Headers = make(map[string]string, len(cu.Headers))
		for k, v := range cu.Headers {
			if !framingHeader(k) {
				cp.Headers[k] = v
			}
		}
		prepared[t] = &cp
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&customWriter{ResponseWriter: w, customs: prepared}, r)
	})
}

// customWriter carries the customs down the chain to Write, which only
// gets the ResponseWriter. It adds no behaviour of its own.
type customWriter struct {
	http.ResponseWriter
	customs Customs
}

func (w *customWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush is here because ReverseProxy checks for http.Flusher directly.
func (w *customWriter) Flush() { http.NewResponseController(w.ResponseWriter).Flush() }

// customFor finds the customization of t that applies to an answer
// written to w, or nil.
func customFor(w http.ResponseWriter, t Type, status int) *Custom {
	// Bounded: a chain of wrappers is a handful deep.
	for range 16 {
		if cw, ok := w.(*customWriter); ok {
			if c := cw.customs[t]; c != nil {
				return c
			}
			switch {
			case t == Default4XX || t == Default5XX:
			case status >= 400 && status < 500:
				return cw.customs[Default4XX]
			case status >= 500:
				return cw.customs[Default5XX]
			}
			return nil
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return nil
		}
		w = u.Unwrap()
	}
	return nil
}

// writeCustom answers r's type as c says, with msg as the error message.
func writeCustom(w http.ResponseWriter, r *Response, c *Custom, msg string) {
	status := r.Status
	if c.Status != 0 {
		status = c.Status
	}
	var body string
	if c.Body == "" {
		body = messageBody(r, msg)
	} else {
		// c is one of Middleware's prepared copies: its template is split.
		body = render(c.body, msg, r.typ, w.Header().Get("X-Amzn-Requestid"))
	}
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	// The custom headers go before the framing, which they cannot
	// change: Middleware dropped any framing header from them.
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	if Bodiless(status) {
		body = ""
		delete(h, "Content-Type")
	} else {
		h["Content-Length"] = []string{strconv.Itoa(len(body))}
	}
	if r.ErrorType != "" {
		h["X-Amzn-Errortype"] = []string{r.ErrorType}
	}
	w.WriteHeader(status)
	w.Write([]byte(body))
}

// messageBody is r's body with msg as its message: the default body when
// msg is the default message.
func messageBody(r *Response, msg string) string {
	if msg == r.message {
		return string(r.Body)
	}
	quoted, _ := json.Marshal(msg)
	return `{"message": ` + string(quoted) + `}`
}

// WriteMessage sends the response of type t with msg instead of its
// default message, e.g. BAD_REQUEST_PARAMETERS naming the missing ones,
// customized if the gateway customizes t.
func WriteMessage(w http.ResponseWriter, t Type, msg string) {
	r := Default(t)
	if c := customFor(w, t, r.Status); c != nil {
		writeCustom(w, r, c, msg)
		return
	}
	body := messageBody(r, msg)
	h := w.Header()
	h["Content-Type"] = contentTypeJSON
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	if r.ErrorType != "" {
		h["X-Amzn-Errortype"] = []string{r.ErrorType}
	}
	w.WriteHeader(r.Status)
	w.Write([]byte(body))
}

// defaultMessage is the message of a default body, {"message": "..."}
// (or "Message" for ACCESS_DENIED).
func defaultMessage(body []byte) string {
	var m map[string]string
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	if s, ok := m["message"]; ok {
		return s
	}
	return m["Message"]
}
