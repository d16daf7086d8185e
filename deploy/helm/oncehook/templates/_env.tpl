{{/*
The container's environment. Every secret comes from a Secret that exists
before the install (secretKeyRef); a value that holds or looks like a secret
stops the render, naming the value to move.
*/}}

{{/* Secret variables: never from env, only from secretEnv (or a destination's signingSecret/urlFrom). */}}
{{- define "oncehook.secretVars" -}}
STRIPE_WEBHOOK_SECRET DATABASE_URL REDIS_URL STRIPE_API_KEY ADMIN_TOKEN SINK_SIGNING_SECRET
{{- end -}}

{{/*
refuseSecretValue fails when a plain value looks like a credential: a Stripe
webhook secret or API key, a Standard Webhooks secret, or a URL with a user
or password. Takes (list WHERE VALUE).
*/}}
{{- define "oncehook.refuseSecretValue" -}}
{{- $where := index . 0 -}}
{{- $v := toString (index . 1) -}}
{{- if regexMatch `(^|[,\s])(whsec_|sk_live_|sk_test_|rk_live_|rk_test_)` $v -}}
{{- fail (printf "%s looks like a Stripe or signing secret: keep it in a Secret and reference it (secretEnv, a destination's signingSecret)" $where) -}}
{{- end -}}
{{- if regexMatch `^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@` $v -}}
{{- fail (printf "%s is a URL with credentials: keep it in a Secret and reference it (secretEnv, a destination's urlFrom)" $where) -}}
{{- end -}}
{{- end -}}

{{/*
str is a value as the environment gets it. Numbers from YAML arrive as
float64, which would print as 6.7108864e+07: whole ones are printed as
integers.
*/}}
{{- define "oncehook.str" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . -}}
{{- else -}}
{{- toString . -}}
{{- end -}}
{{- end -}}

{{/* secretKeyRef renders one variable from a Secret. Takes (list ROOT NAME REF WHERE). */}}
{{- define "oncehook.secretKeyRef" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $ref := index . 2 -}}
{{- $where := index . 3 -}}
{{- if not (kindIs "map" $ref) -}}
{{- fail (printf "%s must be {secret, key}, naming an existing Secret: never the secret itself" $where) -}}
{{- end -}}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secret | default $root.Values.existingSecret | required (printf "%s: name its Secret (secret:) or set existingSecret" $where) | quote }}
      key: {{ $ref.key | default $name | quote }}
      {{- if $ref.optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* The variables taken from Secrets (secretEnv), sorted by name. */}}
{{- define "oncehook.secretEnv" -}}
{{- $root := . -}}
{{- range $required := list "STRIPE_WEBHOOK_SECRET" "DATABASE_URL" -}}
{{- $ref := get $root.Values.secretEnv $required -}}
{{- if or (not $ref) (and (kindIs "map" $ref) $ref.optional) -}}
{{- fail (printf "secretEnv.%s is required and may not be optional: oncehook does not start without it" $required) -}}
{{- end -}}
{{- end -}}
{{- $known := splitList " " (include "oncehook.secretVars" .) -}}
{{- range $name, $ref := .Values.secretEnv }}
{{- if not (has $name $known) -}}
{{- fail (printf "secretEnv.%s: not a secret variable of oncehook (those are %s); plain settings go in env" $name (join ", " $known)) -}}
{{- end -}}
{{- if $ref }}
{{ include "oncehook.secretKeyRef" (list $root $name $ref (printf "secretEnv.%s" $name)) }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The destinations (DESTINATIONS and DESTINATION_<NAME>_*), in the order listed. */}}
{{- define "oncehook.destinationEnv" -}}
{{- $root := . -}}
{{- $names := list -}}
{{- $prefixes := list -}}
{{- if gt (len .Values.destinations) 64 -}}
{{- fail (printf "destinations: %d listed, at most 64" (len .Values.destinations)) -}}
{{- end -}}
{{- range $i, $d := .Values.destinations -}}
{{- $where := printf "destinations[%d]" $i -}}
{{- if not (regexMatch `^[a-z0-9_-]{1,64}$` (toString $d.name)) -}}
{{- fail (printf "%s.name %q: lowercase letters, digits, - and _, at most 64 characters" $where (toString $d.name)) -}}
{{- end -}}
{{- $prefix := printf "DESTINATION_%s_" ($d.name | upper | replace "-" "_") -}}
{{- if has $prefix $prefixes -}}
{{- fail (printf "%s.name %q: another destination already uses the variables %s*" $where $d.name $prefix) -}}
{{- end -}}
{{- $names = append $names $d.name -}}
{{- $prefixes = append $prefixes $prefix -}}
{{- end -}}
{{- if $names }}
- name: DESTINATIONS
  value: {{ join "," $names | quote }}
{{- end }}
{{- range $i, $d := .Values.destinations }}
{{- $where := printf "destinations[%d] (%s)" $i $d.name -}}
{{- $prefix := printf "DESTINATION_%s_" ($d.name | upper | replace "-" "_") -}}
{{- if and $d.url $d.urlFrom -}}
{{- fail (printf "%s: set url or urlFrom, not both" $where) -}}
{{- end -}}
{{- if $d.urlFrom }}
{{ include "oncehook.secretKeyRef" (list $root (print $prefix "URL") $d.urlFrom (print $where ".urlFrom")) }}
{{- else }}
{{- include "oncehook.refuseSecretValue" (list (print $where ".url") (required (print $where ": url (or urlFrom) is required") $d.url)) }}
- name: {{ $prefix }}URL
  value: {{ $d.url | quote }}
{{- end }}
{{- with $d.types }}
- name: {{ $prefix }}TYPES
  value: {{ (kindIs "slice" .) | ternary (join "," .) (toString .) | quote }}
{{- end }}
{{- with $d.livemode }}
- name: {{ $prefix }}LIVEMODE
  value: {{ . | quote }}
{{- end }}
{{- with $d.workers }}
- name: {{ $prefix }}WORKERS
  value: {{ include "oncehook.str" . | quote }}
{{- end }}
{{- with $d.timeout }}
- name: {{ $prefix }}TIMEOUT
  value: {{ . | quote }}
{{- end }}
{{- with $d.maxAttempts }}
- name: {{ $prefix }}MAX_ATTEMPTS
  value: {{ include "oncehook.str" . | quote }}
{{- end }}
{{- with $d.signingSecret }}
{{ include "oncehook.secretKeyRef" (list $root (print $prefix "SIGNING_SECRET") . (print $where ".signingSecret")) }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The plain settings (env), sorted by name. The chart sets LISTEN_ADDR,
ADMIN_ADDR, SHUTDOWN_TIMEOUT and the destinations itself.
*/}}
{{- define "oncehook.plainEnv" -}}
{{- $secrets := splitList " " (include "oncehook.secretVars" .) -}}
{{- $owned := dict "LISTEN_ADDR" "containerPorts.http" "ADMIN_ADDR" "containerPorts.admin" "SHUTDOWN_TIMEOUT" "shutdownTimeoutSeconds" "DESTINATIONS" "destinations" -}}
{{- range $k, $v := .Values.env }}
{{- if not (regexMatch `^[A-Z][A-Z0-9_]*$` $k) -}}
{{- fail (printf "env.%s: not a variable name (upper case, digits and _)" $k) -}}
{{- end -}}
{{- if or (has $k $secrets) (regexMatch `_(SECRET|TOKEN|KEY|PASSWORD)$` $k) -}}
{{- fail (printf "env.%s is a secret: keep it in a Secret and reference it under secretEnv (or a destination's signingSecret)" $k) -}}
{{- end -}}
{{- if or (hasKey $owned $k) (hasPrefix "DESTINATION_" $k) -}}
{{- fail (printf "env.%s is set by the chart: use the value %s instead" $k (get $owned $k | default "destinations")) -}}
{{- end -}}
{{- if and (eq $k "SINK_URL") $.Values.destinations -}}
{{- fail "env.SINK_URL and destinations are both set: oncehook takes one or the other" -}}
{{- end -}}
{{- include "oncehook.refuseSecretValue" (list (printf "env.%s" $k) $v) }}
- name: {{ $k }}
  value: {{ include "oncehook.str" $v | quote }}
{{- end }}
{{- end -}}
