package control

import "atelier/internal/apitype"

// The fleet shows control on two surfaces (the API and the live view's
// page); these give both the one wire shape.

// API returns h as the fleet's API shows it.
func (h Holder) API() apitype.Holder {
	return apitype.Holder{Kind: string(h.Kind), Who: h.Who, Since: h.Since}
}

// API returns s as the fleet's API shows it.
func (s State) API() apitype.ControlState {
	out := apitype.ControlState{Session: s.Session, Task: s.Task, TaskState: string(s.TaskState), Question: s.Question, IdleSeconds: s.IdleSeconds}
	if s.Holder != nil {
		h := s.Holder.API()
		out.Holder = &h
	}
	return out
}

// API returns l as the fleet's API shows it.
func (l Lease) API() apitype.Lease {
	return apitype.Lease{ID: l.ID, Session: l.Session, Holder: l.Holder.API(), PausedTask: l.PausedTask, IdleSeconds: l.IdleSeconds}
}
