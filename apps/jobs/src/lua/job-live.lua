local function live(s) return s == 'queued' or s == 'running' end
