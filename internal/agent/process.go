package agent

import "net/http"

// processes manages background processes.
type processes struct {
	a *Agent
}

func newProcesses(a *Agent) *processes { return &processes{a: a} }

func (p *processes) routes(mux *http.ServeMux) {}

// killSession kills the processes started in session sid.
func (p *processes) killSession(sid string) {}
