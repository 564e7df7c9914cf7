//! `--watch`: a ratatui table on a terminal, plain text blocks otherwise; a clean
//! terminal on q, Esc, Ctrl-C, SIGINT, SIGTERM or a panic.

use crate::output::*;
use crate::table::*;
use crate::{emit, list, Query, TOOL};
use mptcp::diag::{Diag, SocketState};
use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::crossterm::{cursor, execute, terminal};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Color, Modifier, Style};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::{Frame, Terminal};
use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What one refresh shows.
pub(crate) struct View {
    pub(crate) lines: Vec<Line>,
    pub(crate) connections: usize,
    pub(crate) listeners: usize,
    pub(crate) hidden_subflows: bool,
}

/// The listings of `--watch`, each compared with the one before.
pub(crate) struct Watcher {
    pub(crate) diag: Diag,
    pub(crate) query: Query,
    pub(crate) interval: Duration,
    pub(crate) prev: Option<Sample>,
}

impl Watcher {
    pub(crate) fn refresh(&mut self) -> Result<View, String> {
        let conns = list(&mut self.diag, &self.query).map_err(|e| e.to_string())?;
        let cur = Sample {
            at: Instant::now(),
            conns,
        };
        let listeners = cur
            .conns
            .iter()
            .filter(|c| c.state == SocketState::Listen)
            .count();
        let view = View {
            lines: table(self.prev.as_ref(), &cur),
            connections: cur.conns.len() - listeners,
            listeners,
            hidden_subflows: hidden_subflows(&self.diag),
        };
        self.prev = Some(cur);
        Ok(view)
    }

    pub(crate) fn every(&self) -> String {
        format!("every {} s", self.interval.as_secs_f64())
    }
}

/// The terminal's state while the live table is shown: raw mode and the alternate
/// screen, undone on drop, and by the panic hook if the program panics.
pub(crate) struct TerminalGuard;

/// Whether the terminal is in the live table's state (so that it is restored once).
pub(crate) static TERMINAL_TAKEN: AtomicBool = AtomicBool::new(false);

pub(crate) fn restore_terminal() {
    if TERMINAL_TAKEN.swap(false, Ordering::SeqCst) {
        let _ = terminal::disable_raw_mode();
        let _ = execute!(io::stdout(), terminal::LeaveAlternateScreen, cursor::Show);
    }
}

impl TerminalGuard {
    pub(crate) fn take() -> io::Result<TerminalGuard> {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore_terminal();
            previous(info);
        }));
        TERMINAL_TAKEN.store(true, Ordering::SeqCst);
        // From here on, a failure drops the guard, which undoes what was done.
        let guard = TerminalGuard;
        terminal::enable_raw_mode()?;
        execute!(io::stdout(), terminal::EnterAlternateScreen, cursor::Hide)?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore_terminal();
    }
}

pub(crate) fn line_style(l: &Line) -> Style {
    let s = match l.kind {
        Kind::Connection => Style::new().add_modifier(Modifier::BOLD),
        Kind::Listener => Style::new().add_modifier(Modifier::DIM),
        Kind::Subflow => Style::new(),
    };
    match l.mark {
        Mark::Same => s,
        Mark::New => s.fg(Color::Green),
        Mark::Gone => s.fg(Color::Red),
    }
}

pub(crate) fn draw(f: &mut Frame, view: &View, every: &str) {
    let [head, body, foot] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(1),
    ])
    .areas(f.area());
    let title = format!(
        "mptcp-stat  {} UTC  {every}  {} connections, {} listeners",
        clock(),
        view.connections,
        view.listeners
    );
    f.render_widget(
        Paragraph::new(title).style(Style::new().add_modifier(Modifier::BOLD)),
        head,
    );
    let w = widths(&view.lines);
    let header = Row::new(COLUMNS.iter().map(|h| Cell::from(*h)))
        .style(Style::new().add_modifier(Modifier::REVERSED));
    let rows = view
        .lines
        .iter()
        .map(|l| Row::new(l.cells.iter().map(|c| Cell::from(c.as_str()))).style(line_style(l)));
    let constraints = w
        .iter()
        .map(|n| Constraint::Length(u16::try_from(*n).unwrap_or(u16::MAX)));
    f.render_widget(
        Table::new(rows, constraints)
            .header(header)
            .column_spacing(2),
        body,
    );
    let mut help =
        "q, Esc or Ctrl-C: quit   + appeared, - closed since the last refresh".to_string();
    if view.hidden_subflows {
        help = format!("{HIDDEN_NOTE}   {help}");
    }
    f.render_widget(Paragraph::new(help), foot);
}

pub(crate) fn is_quit_key(k: &KeyEvent) -> bool {
    match k.code {
        KeyCode::Char('q') | KeyCode::Char('Q') | KeyCode::Esc => true,
        KeyCode::Char('c') => k.modifiers.contains(KeyModifiers::CONTROL),
        _ => false,
    }
}

/// The live table on the terminal, until a quit key or a signal.
pub(crate) fn watch_terminal(w: &mut Watcher, quit: &AtomicBool) -> Result<(), String> {
    let io_err = |e: io::Error| format!("terminal: {e}");
    let guard = TerminalGuard::take().map_err(io_err)?;
    let mut term = Terminal::new(CrosstermBackend::new(io::stdout())).map_err(io_err)?;
    let every = w.every();
    let mut view = w.refresh()?;
    term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
    let mut next = Instant::now() + w.interval;
    while !quit.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= next {
            view = w.refresh()?;
            term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
            next += w.interval;
            if next <= now {
                next = now + w.interval;
            }
            continue;
        }
        // Short waits, so that a signal is seen soon.
        let wait = (next - now).min(Duration::from_millis(100));
        if event::poll(wait).map_err(io_err)? {
            match event::read().map_err(io_err)? {
                Event::Key(k) if k.kind != KeyEventKind::Release && is_quit_key(&k) => break,
                Event::Resize(..) => {
                    term.draw(|f| draw(f, &view, &every)).map_err(io_err)?;
                }
                _ => {}
            }
        }
    }
    drop(term);
    drop(guard);
    Ok(())
}

/// `--watch` when stdout is not a terminal: plain text blocks, no escape sequences.
pub(crate) fn watch_plain(w: &mut Watcher, quit: &AtomicBool) -> Result<(), String> {
    let mut out = io::stdout().lock();
    let mut noted = false;
    let mut next = Instant::now();
    loop {
        let view = w.refresh()?;
        if quit.load(Ordering::SeqCst) {
            return Ok(());
        }
        if view.hidden_subflows && !noted {
            eprintln!("{TOOL}: {HIDDEN_NOTE}");
            noted = true;
        }
        let block = format!(
            "--- {} UTC, {} ---\n{}\n",
            clock(),
            w.every(),
            plain_table(&view.lines)
        );
        if !emit(&mut out, block.as_bytes())? {
            return Ok(());
        }
        let now = Instant::now();
        next += w.interval;
        if next <= now {
            next = now + w.interval;
        }
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if quit.load(Ordering::SeqCst) {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(20)));
        }
    }
}

pub(crate) fn watch(query: Query, interval: Duration) -> Result<(), String> {
    let tty = io::stdout().is_terminal();
    let quit = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if !tty {
            // A second signal while a write is stuck (a full pipe): out at once. Not on
            // a terminal, which must be restored first.
            signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&quit))
                .map_err(|e| format!("signal handler: {e}"))?;
        }
        signal_hook::flag::register(sig, Arc::clone(&quit))
            .map_err(|e| format!("signal handler: {e}"))?;
    }
    let mut w = Watcher {
        diag: Diag::new().map_err(|e| e.to_string())?,
        query,
        interval,
        prev: None,
    };
    if tty {
        watch_terminal(&mut w, &quit)
    } else {
        watch_plain(&mut w, &quit)
    }
}
