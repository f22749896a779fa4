//! What the commands do once parsed: `serve` runs a node until a signal stops it, the database
//! commands act on the database, the operator commands go through the node's control API.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Context;
use sneakers23::config::Env;
use sneakers23::control::ReducerAnswer;
use sneakers23::control_api::{InventoryReport, ReducerQuery, SellQuery};
use sneakers23::node::{self, NodeConfig};
use sneakers23::seed;

use crate::cli::{Command, PresenceCommand, ServeArgs};

/// Runs one command to its end.
pub(crate) async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => {
            let guide = first_steps(&args);
            serve(args.node_config()?, guide).await?
        }
        Command::Migrate(db) => {
            let db = db.connect().await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
        }
        Command::Reset(db) => {
            let db = db.connect().await?;
            db.reset().await?;
            tracing::info!("database reset");
        }
        Command::Seed { rng_seed, db } => {
            let db = db.connect().await?;
            db.migrate().await?;
            let inserted = seed::seed(&db, rng_seed).await?;
            let items: usize = inserted.iter().map(|p| p.item_ids.len()).sum();
            tracing::info!(products = inserted.len(), items, "database seeded");
        }
        Command::Release { product_id, node } => {
            node.client()?.release(product_id).await?;
            println!("product {product_id} released");
        }
        Command::Sell {
            item_id,
            units,
            leave,
            node,
        } => {
            let query = match leave {
                Some(leave) => SellQuery {
                    units: None,
                    leave: Some(leave),
                },
                None => SellQuery {
                    units: Some(units),
                    leave: None,
                },
            };
            let report = node.client()?.sell(item_id, query).await?;
            println!(
                "sold {} unit(s) of item {item_id}; {} left",
                report.sold, report.available
            );
        }
        Command::SellRandomUntilGone {
            per_tick,
            tick_ms,
            wait,
            node,
        } => {
            let query = ReducerQuery {
                per_tick: Some(per_tick),
                tick_ms: Some(tick_ms),
                wait,
            };
            let answer = node.client()?.sell_random_until_gone(query).await?;
            if let ReducerAnswer::Done(done) = answer {
                println!(
                    "sold out! {} unit(s) sold in {} tick(s)",
                    done.sold, done.ticks
                );
            } else {
                println!(
                    "selling {per_tick} random items every {tick_ms} ms until gone (see the node's log)"
                );
            }
        }
        Command::Presence {
            command: PresenceCommand::List { node },
        } => {
            let list = node.client()?.presence().await?;
            println!("{}", serde_json::to_string_pretty(&list)?);
        }
        Command::Inventory { json, node } => {
            let inventory = node.client()?.inventory().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&inventory)?);
            } else {
                print_inventory(&inventory);
            }
        }
    }
    Ok(())
}

/// What `serve` prints under its address: where the shop and the dashboard are, and how to
/// release a shoe, with this node's port and credentials (`{url}` and `{port}` are filled in
/// once the node listens).
fn first_steps(args: &ServeArgs) -> String {
    let program = std::env::args()
        .next()
        .filter(|p| p.contains('/'))
        .unwrap_or_else(|| "sneakers23".to_owned());
    let credentials = match (args.env, &args.admin_user, &args.admin_password) {
        (Env::Dev, None, None) => " (development credentials: admin / password)".to_owned(),
        (_, Some(user), _) => format!(" (user {user}, password from ADMIN_PASSWORD)"),
        _ => " (ADMIN_USER / ADMIN_PASSWORD)".to_owned(),
    };
    let port_env = if args.port == 4000 {
        ""
    } else {
        "PORT={port} "
    };
    format!(
        "  shop:            {{url}}/  (both shoes are \"coming soon\" until released)\n\
         \x20 release a shoe:  {port_env}{program} release 1   (and 2; pages update live)\n\
         \x20 admin dashboard: {{url}}/admin{credentials}\n\
         \x20 load test:       cargo run --release -p shopper-bench -- --url {{url}} -n 2000 --hold-secs 30\n\
         \x20 stop:            Ctrl-C"
    )
}

async fn serve(config: NodeConfig, guide: String) -> anyhow::Result<()> {
    let mut node = node::start(config).await?;
    let addr = node.addr();
    let shown = if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    };
    let url = format!("http://{shown}");
    println!("listening on {url}");
    if let Some(ops) = node.ops_addr() {
        println!("health and metrics on http://{ops}");
    }
    println!(
        "{}",
        guide
            .replace("{url}", &url)
            .replace("{port}", &shown.port().to_string())
    );
    tokio::select! {
        () = shutdown_signal() => tracing::info!("shutdown requested; draining connections"),
        result = node.wait() => {
            result.context("the HTTP server stopped")?;
        }
    }
    node.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

fn print_inventory(inventory: &InventoryReport) {
    for product in &inventory.products {
        let state = if product.released {
            "released"
        } else {
            "coming soon"
        };
        println!("product {} {} ({state})", product.id, product.name);
        for item in &product.items {
            println!(
                "  item {:>3}  size {:>4}  {:>5} left  {}",
                item.id.to_string(),
                item.size,
                item.available_count.to_string(),
                item.level.as_str()
            );
        }
    }
}
